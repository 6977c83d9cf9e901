/*
 * bench-limits: the machine limits a live migration runs against, measured
 * with the project's own code paths (scripts/bench-migrate prints them next
 * to the migrations, docs/benchmarks.md).
 *
 *   bench-limits net --transport tcp|tls|unix [--tls-dir DIR] [--bytes SIZE]
 *                    [--into-memfd]
 *       One process sends SIZE bytes (default 2G) to another over a loopback
 *       channel of lib/chan.h (TLS: TLS 1.3 with the certificates of DIR, as
 *       kvm-migrate and kvm-migrated use them), in 1 MiB writes like
 *       lib/stream.c. Prints the connect (+handshake) time and GB/s from the
 *       first byte written to the receiver's acknowledgement of the last.
 *       With --into-memfd, the sender sends SIZE bytes of random pages from
 *       resident memory and the receiver pwrite()s what it reads into a
 *       fresh memfd, as a destination puts arriving pages into guest RAM:
 *       the floor under any migration of SIZE bytes of incompressible
 *       memory over that channel on this machine (no page codec, no
 *       checksums, no protocol). It also prints the CPU time each end
 *       spent on the transfer.
 *   bench-limits stream --transport tls|unix [--tls-dir DIR] [--mib N]
 *       The migration's page path without KVM: N MiB (default 64) of random
 *       pages from resident memory are encoded by lib/pages.h (lz4 tried,
 *       as migrations do by default), sent as REC_PAGES records through
 *       lib/stream.h (writer thread) over a loopback channel, read back
 *       with the read-ahead, decoded and pwrite()n into a fresh memfd.
 *       Prints pages/s from the first record to the receiver's
 *       acknowledgement. scripts/check measures the test machine with it
 *       (tests/pace.sh): the pace the migration tests are sized to.
 *   bench-limits pages [--mib N]
 *       The page codec of lib/pages.h on N MiB (default 256) of pages made
 *       as the fill guest makes them (pattern=random and pattern=text):
 *       encode with lz4, encode raw, decode; GB/s of page bytes, one thread.
 *   bench-limits samples DIR [--mib N]
 *       Writes DIR/random.bin and DIR/text.bin (N MiB each, default 64) of
 *       those pages, for `lz4 -b`.
 *   bench-limits populate [--mib N]
 *       What the destination pays to put N MiB (default 512) into a fresh
 *       memfd, as guest RAM is: 4 KiB copies into never-touched pages (one
 *       page fault each, as recv.c does), the same after fallocate(), and
 *       after MADV_POPULATE_WRITE; GB/s and kpages/s.
 *
 * Output: one "key value" line per number (for the script), comments
 * start with '#'. Exit status 0, or 1 with the reason on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "chan.h"
#include "record.h"
#include "stream.h"
#include "err.h"
#include "pages.h"
#include "parse.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define CHUNK		(1U << 20)	/* lib/stream.c's STREAM_OUT_FLUSH */
#define PAGE		4096U

/* CPU time (user + system) of this process so far, ns. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "bench-limits: %s: %s\n", what, why);
	exit(1);
}

/* ---- the fill guest's page generators (kvm/guest/fill.c, prng.h) ---- */

static uint64_t rng_s;

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t rng_next(void)
{
	uint64_t x = rng_s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static const char *const words[32] = {
	"page", "dirty", "bitmap", "round", "copy", "guest", "memory", "vcpu",
	"migrate", "snapshot", "the", "a", "of", "and", "to", "in",
	"downtime", "bandwidth", "converge", "write", "protect", "fault", "ring", "slot",
	"kvm", "host", "tlb", "shadow", "paging", "log", "clear", "harvest",
};

static void text_template(char *t)
{
	unsigned int pos = 0, col = 0, i;
	const char *w;

	while (pos < PAGE) {
		w = words[rng_next() >> 59];
		for (i = 0; w[i] && pos < PAGE; i++, col++)
			t[pos++] = w[i];
		if (pos < PAGE)
			t[pos++] = col >= 72 ? '\n' : ' ';
		col = col >= 72 ? 0 : col + 1;
	}
}

/* n pages of pattern "random" or "text", as at guest addresses from 4 MiB. */
static uint8_t *make_pages(const char *pattern, uint64_t n)
{
	uint8_t *p = malloc(n * PAGE);
	char tmpl[PAGE];
	uint64_t i, j, gpa;
	unsigned int off, k;

	if (!p)
		die("memory", strerror(ENOMEM));
	rng_s = mix64(1) | 1;
	if (!strcmp(pattern, "text"))
		text_template(tmpl);
	for (i = 0; i < n; i++) {
		uint8_t *pg = p + i * PAGE;

		gpa = 0x400000 + i * PAGE;
		if (!strcmp(pattern, "random")) {
			for (j = 0; j < PAGE / 8; j++) {
				uint64_t v = rng_next();

				memcpy(pg + j * 8, &v, 8);
			}
		} else {
			off = (unsigned int)((gpa >> 12) * 61 % PAGE);
			memcpy(pg, tmpl + off, PAGE - off);
			memcpy(pg + PAGE - off, tmpl, off);
			k = (unsigned int)snprintf((char *)pg, 32, "page 0x%012llx\n",
						   (unsigned long long)gpa);
			pg[k] = ' ';
		}
	}
	return p;
}

/* ---- pages: the codec ---- */

static void bench_codec(const char *pattern, uint64_t n)
{
	uint8_t *src = make_pages(pattern, n), *dst = malloc(n * PAGE);
	struct buf *payload = buf_new(1U << 20);
	struct buf **batches;
	struct pages_stats st;
	uint64_t i, nb = 0, t, enc_ns, raw_ns, dec_ns, wire = 0;
	int compress, r;

	batches = calloc(n / 200 + 2, sizeof(*batches));
	if (!dst || !payload || !batches)
		die("memory", strerror(ENOMEM));
	memset(dst, 1, n * PAGE);	/* populated: this is the codec, not page faults */
	for (compress = 0; compress <= 1; compress++) {
		memset(&st, 0, sizeof(st));
		t = now_ns();
		buf_reset(payload);
		for (i = 0; i < n; i++) {
			r = pages_put(payload, 0x400000 + i * PAGE, src + i * PAGE, compress, &st);
			if (r == KM_ERR_NO_SPACE) {
				buf_reset(payload);
				r = pages_put(payload, 0x400000 + i * PAGE, src + i * PAGE, compress,
					      &st);
			}
			if (r)
				die("pages_put", km_strerror(r));
		}
		t = now_ns() - t;
		if (compress) {
			enc_ns = t;
			wire = st.bytes_out;
			printf("codec_%s_lz4_pages %llu\ncodec_%s_raw_pages %llu\n", pattern,
			       (unsigned long long)st.lz4, pattern, (unsigned long long)st.raw);
		} else {
			raw_ns = t;
		}
	}
	/* Decode: keep the encoded batches, then expand them all. */
	memset(&st, 0, sizeof(st));
	for (i = 0; i < n; i++) {
		if (!batches[nb] && !(batches[nb] = buf_new(1U << 20)))
			die("memory", strerror(ENOMEM));
		r = pages_put(batches[nb], 0x400000 + i * PAGE, src + i * PAGE, true, &st);
		if (r == KM_ERR_NO_SPACE) {
			nb++;
			if (!(batches[nb] = buf_new(1U << 20)))
				die("memory", strerror(ENOMEM));
			r = pages_put(batches[nb], 0x400000 + i * PAGE, src + i * PAGE, true, &st);
		}
		if (r)
			die("pages_put", km_strerror(r));
	}
	t = now_ns();
	for (i = 0; i <= nb; i++) {
		struct buf *f = buf_view(buf_ptr(batches[i]), buf_len(batches[i]));
		enum page_kind kind;
		const uint8_t *data;
		uint32_t len;
		uint64_t gpa;

		while ((r = pages_get(f, &gpa, &kind, &data, &len)) == 0)
			if ((r = pages_expand(kind, data, len, dst + (gpa - 0x400000))) != 0)
				die("pages_expand", km_strerror(r));
		buf_free(f);
	}
	dec_ns = now_ns() - t;
	if (memcmp(src, dst, n * PAGE))
		die("decode", "the pages differ");
	printf("codec_%s_encode_lz4_gbs %.3f\n", pattern, (double)(n * PAGE) / (double)enc_ns);
	printf("codec_%s_encode_raw_gbs %.3f\n", pattern, (double)(n * PAGE) / (double)raw_ns);
	printf("codec_%s_decode_gbs %.3f\n", pattern, (double)(n * PAGE) / (double)dec_ns);
	printf("codec_%s_ratio %.3f\n", pattern, (double)(n * PAGE) / (double)wire);
	for (i = 0; i <= nb; i++)
		buf_free(batches[i]);
	free(batches);
	buf_free(payload);
	free(src);
	free(dst);
}

static void write_samples(const char *dir, uint64_t n)
{
	const char *pat[2] = { "random", "text" };
	char path[4096];
	int i;

	for (i = 0; i < 2; i++) {
		uint8_t *p = make_pages(pat[i], n);
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s.bin", dir, pat[i]);
		if (!(f = fopen(path, "w")) || fwrite(p, PAGE, n, f) != n || fclose(f))
			die(path, strerror(errno));
		free(p);
	}
}

/* ---- populate: the destination's guest RAM ---- */

static uint8_t *fresh_memfd(uint64_t bytes, int mode)
{
	uint8_t *p;
	int fd = memfd_create("bench-limits", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)bytes) < 0)
		die("memfd", strerror(errno));
	if (mode == 1 && fallocate(fd, 0, 0, (off_t)bytes) < 0)
		die("fallocate", strerror(errno));
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		die("mmap", strerror(errno));
	if (mode == 2 && madvise(p, bytes, MADV_POPULATE_WRITE) < 0)
		die("MADV_POPULATE_WRITE", strerror(errno));
	return p;
}

static void bench_populate(uint64_t n)
{
	static const char *const name[3] = { "fault", "fallocate", "madv_populate" };
	uint8_t *src = make_pages("random", 1024), *p;
	uint64_t t, i;
	int mode;

	for (mode = 0; mode < 3; mode++) {
		t = now_ns();
		p = fresh_memfd(n * PAGE, mode);	/* fallocate/madvise timed too */
		for (i = 0; i < n; i++)
			memcpy(p + i * PAGE, src + (i % 1024) * PAGE, PAGE);
		t = now_ns() - t;
		printf("populate_%s_gbs %.3f\npopulate_%s_kpps %.0f\n", name[mode],
		       (double)(n * PAGE) / (double)t, name[mode], (double)n * 1e6 / (double)t);
		munmap(p, n * PAGE);
	}
	free(src);
}

/*
 * The floor's receiver: read, then pwrite() into a fresh memfd, on one
 * thread. (A second thread for the pwrite()s, as recv.c has, measured no
 * faster here: both CPUs are already busy with the two ends.)
 */
static void sink_receive(struct chan *c, uint64_t bytes, const char *transport)
{
	uint8_t *in = malloc(256U << 10);
	uint64_t off = 0, cpu0 = cpu_ns();
	int64_t n;
	int fd;

	if (!in)
		die("memory", strerror(ENOMEM));
	if ((fd = memfd_create("bench-limits", MFD_CLOEXEC)) < 0 || ftruncate(fd, (off_t)bytes) < 0)
		die("memfd", strerror(errno));
	for (; off < bytes; off += (uint64_t)n) {
		if ((n = chan_read(c, in, 256U << 10)) < 0)
			die("read", km_strerror((int)n));
		if (pwrite(fd, in, (size_t)n, (off_t)off) != n)
			die("pwrite", strerror(errno));
	}
	printf("net_%s_memfd_cpu_recv_ms %.1f\n", transport, (double)(cpu_ns() - cpu0) / 1e6);
	close(fd);
	free(in);
}

/* ---- net: a loopback channel ---- */

static void bench_net(const char *transport, const char *tls_dir, uint64_t bytes, bool into_memfd)
{
	char err[CHAN_ERR_MAX] = "", addr[4200], sockdir[] = "/tmp/bench-limits.XXXXXX";
	struct chan_tls *tls = NULL;
	struct chan *c = NULL;
	int lfd, fd, pfd[2], st, r, is_unix = !strcmp(transport, "unix");
	int is_tls = !strcmp(transport, "tls");
	uint64_t t0, t1, t2, left, cpu0 = 0, cpu1 = 0;
	uint8_t *chunk, *src = NULL, ack = 0;
	pid_t pid;

	if (!is_unix && !is_tls && strcmp(transport, "tcp"))
		die("--transport", "tcp, tls or unix");
	if (is_tls && !tls_dir)
		die("--transport tls", "needs --tls-dir");
	if (is_unix) {
		if (!mkdtemp(sockdir))
			die("mkdtemp", strerror(errno));
		snprintf(addr, sizeof(addr), "unix:%s/s", sockdir);
	} else {
		snprintf(addr, sizeof(addr), "127.0.0.1:0");
	}
	if ((lfd = chan_listen(addr, err, sizeof(err))) < 0)
		die("listen", err);
	if (!is_unix)
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", chan_local_port(lfd));
	if (pipe(pfd) < 0)
		die("pipe", strerror(errno));
	fflush(stdout);
	if ((pid = fork()) < 0)
		die("fork", strerror(errno));
	if (pid == 0) {
		/* The receiver: reads everything, then acknowledges with one byte. */
		uint8_t *in = malloc(256U << 10);
		int64_t n;

		if (is_tls && chan_tls_new(tls_dir, true, &tls, err, sizeof(err)) != 0)
			die("server TLS", err);
		if ((fd = accept(lfd, NULL, NULL)) < 0)
			die("accept", strerror(errno));
		if ((r = chan_accept_fd(fd, tls, 10000, &c, err, sizeof(err))) != 0)
			die("accept", err);
		if (into_memfd)
			sink_receive(c, bytes, transport);
		else
			for (left = bytes; left > 0; left -= (uint64_t)n)
				if ((n = chan_read(c, in, 256U << 10)) < 0)
					die("read", km_strerror((int)n));
		if (chan_write(c, &ack, 1) != 0)
			die("ack", "write failed");
		chan_close(c);
		chan_tls_free(tls);
		_exit(0);
	}
	close(lfd);
	if (is_tls && chan_tls_new(tls_dir, false, &tls, err, sizeof(err)) != 0)
		die("client TLS", err);
	chunk = malloc(CHUNK);
	if (!chunk)
		die("memory", strerror(ENOMEM));
	memset(chunk, 0xa5, CHUNK);
	if (into_memfd) {
		/* Resident random pages, as a source's guest RAM is (not timed). */
		uint8_t *one = make_pages("random", CHUNK / PAGE);
		uint64_t o;

		if (!(src = malloc(bytes)))
			die("memory", strerror(ENOMEM));
		for (o = 0; o < bytes; o += CHUNK)
			memcpy(src + o, one, bytes - o < CHUNK ? bytes - o : CHUNK);
		free(one);
	}
	t0 = now_ns();
	if ((r = chan_connect(addr, tls, 10000, &c, err, sizeof(err))) != 0)
		die("connect", err);
	t1 = now_ns();
	cpu0 = cpu_ns();
	for (left = bytes; left > 0; left -= left < CHUNK ? left : CHUNK)
		if ((r = chan_write(c, src ? src + (bytes - left) : chunk,
				    left < CHUNK ? left : CHUNK)) != 0)
			die("write", km_strerror(r));
	if (chan_read_full(c, &ack, 1) != 0)
		die("ack", "not received");
	t2 = now_ns();
	cpu1 = cpu_ns();
	chan_close(c);
	chan_tls_free(tls);
	waitpid(pid, &st, 0);
	if (is_unix) {
		char p[4200];

		snprintf(p, sizeof(p), "%s/s", sockdir);
		unlink(p);
		rmdir(sockdir);
	}
	printf("net_%s%s_connect_ms %.2f\n", transport, into_memfd ? "_memfd" : "",
	       (double)(t1 - t0) / 1e6);
	printf("net_%s%s_gbs %.3f\n", transport, into_memfd ? "_memfd" : "",
	       (double)bytes / (double)(t2 - t1));
	if (into_memfd)
		printf("net_%s_memfd_cpu_send_ms %.1f\n", transport, (double)(cpu1 - cpu0) / 1e6);
	free(chunk);
	free(src);
}

/* ---- stream: pages through lib/stream over a channel ---- */

#define STREAM_BATCH	(1U << 20)	/* migrate/send.c's BATCH_PAYLOAD */

/* The receiver: records until REC_END, every page decoded into a memfd. */
static void stream_receive(struct chan *c)
{
	struct stream *s = stream_new(c);
	uint8_t page[PAGE];
	const uint8_t *p;
	uint32_t type, len;
	int fd, r;

	if (!s)
		die("memory", strerror(ENOMEM));
	if ((fd = memfd_create("bench-limits", MFD_CLOEXEC)) < 0)
		die("memfd", strerror(errno));
	if ((r = stream_start_reader(s, REC_MAX_PAYLOAD, 1U << REC_END)) != 0)
		die("stream reader", km_strerror(r));
	for (;;) {
		struct buf *b;
		enum page_kind kind;
		const uint8_t *data;
		uint64_t gpa;

		if ((r = stream_get(s, REC_MAX_PAYLOAD, &type, &p, &len)) != 0)
			die("stream_get", km_strerror(r));
		if (type == REC_END)
			break;
		if (type != REC_PAGES || !(b = buf_view(p, len)))
			die("stream", "unexpected record");
		while ((r = pages_get(b, &gpa, &kind, &data, &len)) == 0) {
			if ((r = pages_expand(kind, data, len, page)) != 0)
				die("pages_expand", km_strerror(r));
			if (pwrite(fd, page, PAGE, (off_t)gpa) != PAGE)
				die("pwrite", strerror(errno));
		}
		if (r != KM_ERR_END)
			die("pages_get", km_strerror(r));
		buf_free(b);
	}
	if ((r = stream_put(s, REC_ROUND_ACK, NULL, 0)) != 0 || (r = stream_flush(s)) != 0)
		die("ack", km_strerror(r));
	stream_free(s);
	close(fd);
}

static void bench_stream(const char *transport, const char *tls_dir, uint64_t n)
{
	char err[CHAN_ERR_MAX] = "", addr[4200], sockdir[] = "/tmp/bench-limits.XXXXXX";
	int lfd, fd, st, r, is_tls = !strcmp(transport, "tls");
	struct chan_tls *tls = NULL;
	struct stream *s = NULL;
	struct pages_stats ps;
	struct buf *payload;
	struct chan *c = NULL;
	const uint8_t *p;
	uint32_t type, len;
	uint8_t *src;
	uint64_t i, t0, t1;
	pid_t pid;

	if (!is_tls && strcmp(transport, "unix"))
		die("--transport", "tls or unix");
	if (is_tls && !tls_dir)
		die("--transport tls", "needs --tls-dir");
	if (is_tls) {
		snprintf(addr, sizeof(addr), "127.0.0.1:0");
	} else {
		if (!mkdtemp(sockdir))
			die("mkdtemp", strerror(errno));
		snprintf(addr, sizeof(addr), "unix:%s/s", sockdir);
	}
	if ((lfd = chan_listen(addr, err, sizeof(err))) < 0)
		die("listen", err);
	if (is_tls)
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", chan_local_port(lfd));
	fflush(stdout);
	if ((pid = fork()) < 0)
		die("fork", strerror(errno));
	if (pid == 0) {
		if (is_tls && chan_tls_new(tls_dir, true, &tls, err, sizeof(err)) != 0)
			die("server TLS", err);
		if ((fd = accept(lfd, NULL, NULL)) < 0)
			die("accept", strerror(errno));
		if (chan_accept_fd(fd, tls, 30000, &c, err, sizeof(err)) != 0)
			die("accept", err);
		stream_receive(c);
		chan_close(c);
		chan_tls_free(tls);
		_exit(0);
	}
	close(lfd);
	src = make_pages("random", n);	/* resident, as a source's guest RAM (not timed) */
	if (is_tls && chan_tls_new(tls_dir, false, &tls, err, sizeof(err)) != 0)
		die("client TLS", err);
	if ((r = chan_connect(addr, tls, 30000, &c, err, sizeof(err))) != 0)
		die("connect", err);
	if (!(s = stream_new(c)) || !(payload = buf_new(STREAM_BATCH)))
		die("memory", strerror(ENOMEM));
	if ((r = stream_start_writer(s, STREAM_BATCH)) != 0)
		die("stream writer", km_strerror(r));
	memset(&ps, 0, sizeof(ps));
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		r = pages_put(payload, i * PAGE, src + i * PAGE, true, &ps);
		if (r == KM_ERR_NO_SPACE) {
			if ((r = stream_put_owned(s, REC_PAGES, &payload)) != 0)
				die("stream_put_owned", km_strerror(r));
			r = pages_put(payload, i * PAGE, src + i * PAGE, true, &ps);
		}
		if (r)
			die("pages_put", km_strerror(r));
	}
	if ((buf_len(payload) && (r = stream_put_owned(s, REC_PAGES, &payload)) != 0) ||
	    (r = stream_put(s, REC_END, NULL, 0)) != 0 || (r = stream_flush(s)) != 0)
		die("stream", km_strerror(r));
	if ((r = stream_get(s, 64, &type, &p, &len)) != 0 || type != REC_ROUND_ACK)
		die("ack", r ? km_strerror(r) : "unexpected record");
	t1 = now_ns();
	printf("stream_%s_pps %.0f\n", transport, (double)n * 1e9 / (double)(t1 - t0));
	printf("stream_%s_mbs %.2f\n", transport, (double)(n * PAGE) / (double)(t1 - t0) * 1e3);
	stream_free(s);
	buf_free(payload);
	chan_close(c);
	chan_tls_free(tls);
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("receiver", "failed");
	if (!is_tls) {
		char sp[4200];

		snprintf(sp, sizeof(sp), "%s/s", sockdir);
		unlink(sp);
		rmdir(sockdir);
	}
	free(src);
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-limits net --transport tcp|tls|unix [--tls-dir DIR] [--bytes SIZE]\n"
			"                         [--into-memfd]\n"
			"       bench-limits stream --transport tls|unix [--tls-dir DIR] [--mib N]\n"
			"       bench-limits pages [--mib N]\n"
			"       bench-limits samples DIR [--mib N]\n"
			"       bench-limits populate [--mib N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "transport", required_argument, NULL, 't' },
		{ "tls-dir", required_argument, NULL, 'd' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "mib", required_argument, NULL, 'm' },
		{ "into-memfd", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd, *transport = "tcp", *tls_dir = NULL;
	uint64_t bytes = 2ULL << 30, mib = 0;
	bool into_memfd = false;
	int c;

	if (argc < 2)
		usage();
	cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 't': transport = optarg; break;
		case 'd': tls_dir = optarg; break;
		case 'f': into_memfd = true; break;
		case 'b':
			if (parse_size(optarg, &bytes) != 0 || bytes == 0)
				usage();
			break;
		case 'm':
			if (parse_u64(optarg, 1, 1 << 16, &mib) != 0)
				usage();
			break;
		default: usage();
		}
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(cmd, "net")) {
		bench_net(transport, tls_dir, bytes, into_memfd);
	} else if (!strcmp(cmd, "stream")) {
		bench_stream(transport, tls_dir, (mib ? mib : 64) << 8);
	} else if (!strcmp(cmd, "pages")) {
		bench_codec("random", (mib ? mib : 256) << 8);
		bench_codec("text", (mib ? mib : 256) << 8);
	} else if (!strcmp(cmd, "samples")) {
		if (optind >= argc)
			usage();
		write_samples(argv[optind], (mib ? mib : 64) << 8);
	} else if (!strcmp(cmd, "populate")) {
		bench_populate((mib ? mib : 512) << 8);
	} else {
		usage();
	}
	return 0;
}
