/*
 * kmwork: a workload for Linux guests that can prove no write was lost,
 * the Linux-guest twin of the verify workload guest (kvm/guest/verify.c).
 * A static program: tests/lib/make-initramfs.sh --kmwork puts it in the
 * initramfs as /bin/kmwork, and it runs unchanged on the host too.
 *
 *   kmwork start [--mib N] [--rate PAGES_PER_S] [--seed S]
 *   kmwork check | corrupt [PAGE] | stop
 *   kmwork disk-write DEV --blocks N [--version V]
 *   kmwork disk-verify DEV [--blocks N] [--version V]
 *
 * start forks a daemon and returns once it is ready (all of its pages
 * written once), printing
 *   KMWORK started pid=P pages=N rate=R
 * The daemon writes random pages at the rate (0: as fast as it can). A
 * write stamps the page with (index, version, checksum of the rest, which
 * is derived from index and version) and then records the version in a
 * separate array. Every iteration it also reads CLOCK_MONOTONIC and keeps
 * the largest forward step (a guest paused for a migration's downtime or a
 * checkpoint shows here; at rate R the step is normally about 1/R s, or
 * 1 ms when R > 1000, which writes R/1000 pages per step; the time spent
 * serving a request is left out) and counts backward steps (must stay 0).
 * The daemon keeps nothing of its caller open (a $(kmwork start) returns)
 * but stderr on a terminal, where it would say why it died.
 *
 * The other commands are requests to the daemon, which it serves between
 * two page writes, where every page agrees with its entry in the array
 * unless memory was lost or corrupted behind its back:
 *   check     KMWORK check pid=P pages=N bad=B writes=W backwards=K max_gap_ms=G uptime_s=U
 *             (and " first_bad=I" at the end when B > 0)
 *   corrupt   KMWORK corrupted pid=P page=I  (test only: flips a byte of
 *             page I, default N/2, without a new version, and never writes
 *             that page again, so that every later check says bad=1)
 *   stop      KMWORK stopped pid=P writes=W  (the daemon exits)
 * Disk mode (no daemon; DEV a block device, or on the host the disk's
 * image file): blocks of 4 KiB stamped like the pages, block number as
 * the index:
 *   disk-write   KMWORK disk-write dev=D blocks=N version=V  (written, synced)
 *   disk-verify  KMWORK disk-verify dev=D blocks=N bad=B versions=LO-HI
 *                (and " first_bad=I" when B > 0; with --version V a block
 *                of another version is bad too)
 * No daemon: "KMWORK <command>: no daemon", exit status 1. Other errors:
 * "KMWORK error: ...", exit status 1; usage errors exit 2. The prefix is
 * upper case so that a console that echoes the typed (lower-case) command
 * line never matches a grep for the answer.
 *
 * Handshake: the daemon's pid is in $KMWORK_DIR/kmwork.pid (default
 * /tmp). A client queues a real-time signal carrying the command
 * (sigqueue: real-time signals queue, so concurrent clients each get
 * served), the daemon writes the answer to $KMWORK_DIR/kmwork.reply.<client
 * pid> and signals back; the client waits for that signal, checking every
 * second that the daemon still lives.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvm/guest/prng.h"
#include "guest-linux/disk.h"
#include "guest-linux/stamp.h"

#define PAGE		STAMP_SIZE
#define WORDS		STAMP_WORDS
#define MIB_MAX		65536		/* 64 GiB: far beyond any test guest */
#define REQ_MAX		16		/* requests queued between two writes */
#define REPLY_MAX	256
#define WAIT_S		300		/* a client's bound on one answer */

enum { CMD_CHECK = 1, CMD_CORRUPT, CMD_STOP };
#define SIG_REQ		(SIGRTMIN)
#define SIG_REPLY	(SIGRTMIN + 1)

struct req {
	pid_t pid;
	int value;	/* cmd | page << 2: corrupt's page travels with it */
};

static volatile sig_atomic_t req_head;	/* written by the handler only */
static struct req reqs[REQ_MAX];

struct work {
	uint64_t *mem;		/* pages * WORDS */
	uint64_t *versions;	/* pages entries */
	uint64_t pages, rate, writes, backwards, max_gap_ns;
	uint64_t corrupted;	/* UINT64_MAX: none; else never written again */
	struct timespec start;
	struct prng rng;
	char dir[256];
};

static uint64_t ts_ns(const struct timespec *t)
{
	return (uint64_t)t->tv_sec * 1000000000ULL + (uint64_t)t->tv_nsec;
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return ts_ns(&t);
}

static void on_request(int sig, siginfo_t *si, void *uc)
{
	sig_atomic_t h = req_head;

	(void)sig;
	(void)uc;
	/* A full queue drops the request: its client times out, the daemon goes on. */
	if (h >= REQ_MAX)
		return;
	reqs[h].pid = si->si_pid;
	reqs[h].value = si->si_value.sival_int;
	/* The entry before the count that publishes it (the loop fences the other way). */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	req_head = h + 1;
}

static int path_in(char *buf, size_t len, const char *dir, const char *name, long pid)
{
	int n = pid ? snprintf(buf, len, "%s/%s.%ld", dir, name, pid) :
		      snprintf(buf, len, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Writes text to path through a temporary name: a reader sees all of it or nothing. */
static int write_atomic(const char *path, const char *text)
{
	char tmp[320];
	size_t len = strlen(text);
	int fd, r = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len)
		r = -EIO;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r)
		unlink(tmp);
	return r;
}

/* Reads at most len - 1 bytes of a small file into buf, NUL-terminated. */
static int read_small(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

static void work_check(struct work *w, char *out, size_t len)
{
	uint64_t i, bad = 0, first = 0;

	for (i = 0; i < w->pages; i++)
		if (stamp_bad(w->mem + i * WORDS, i, w->versions[i]) && bad++ == 0)
			first = i;
	snprintf(out, len, "KMWORK check pid=%ld pages=%" PRIu64 " bad=%" PRIu64
		 " writes=%" PRIu64 " backwards=%" PRIu64 " max_gap_ms=%" PRIu64
		 " uptime_s=%" PRIu64, (long)getpid(), w->pages, bad, w->writes,
		 w->backwards, (w->max_gap_ns + 999999) / 1000000,
		 (uint64_t)((now_ns() - ts_ns(&w->start)) / 1000000000ULL));
	if (bad)
		snprintf(out + strlen(out), len - strlen(out), " first_bad=%" PRIu64, first);
}

/* Serves one request; 1 if it was stop. */
static int work_serve(struct work *w, const struct req *q)
{
	char path[300], out[REPLY_MAX];
	uint64_t page;
	union sigval v = { .sival_int = 0 };
	int cmd = q->value & 3, stop = 0;

	switch (cmd) {
	case CMD_CHECK:
		work_check(w, out, sizeof(out));
		break;
	case CMD_CORRUPT:
		page = (uint64_t)(q->value >> 2);
		if (page >= w->pages)
			page = w->pages / 2;
		/* Flipped after the stamp: the checksum no longer matches. */
		((uint8_t *)(w->mem + page * WORDS))[PAGE - 1] ^= 0x5a;
		w->corrupted = page;
		snprintf(out, sizeof(out), "KMWORK corrupted pid=%ld page=%" PRIu64,
			 (long)getpid(), page);
		break;
	case CMD_STOP:
		snprintf(out, sizeof(out), "KMWORK stopped pid=%ld writes=%" PRIu64,
			 (long)getpid(), w->writes);
		stop = 1;
		break;
	default:
		snprintf(out, sizeof(out), "KMWORK error: unknown request %d", q->value);
	}
	if (path_in(path, sizeof(path), w->dir, "kmwork.reply", q->pid) == 0 &&
	    write_atomic(path, out) == 0)
		sigqueue(q->pid, SIG_REPLY, v);
	return stop;
}

/* The daemon's loop; returns when asked to stop. */
static void work_run(struct work *w)
{
	uint64_t batch, period = 0, next, prev, now, i, k;
	sig_atomic_t tail = 0, head;
	struct timespec t;
	sigset_t req;

	sigemptyset(&req);
	sigaddset(&req, SIG_REQ);
	/* At most ~1000 sleeps a second: faster rates write a batch per sleep. */
	batch = w->rate > 1000 ? w->rate / 1000 : 1;
	if (w->rate)
		period = batch * 1000000000ULL / w->rate;
	next = prev = now_ns();
	for (;;) {
		head = req_head;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		if (tail != head) {
			int stop = 0;

			for (; tail < head; tail++)
				stop |= work_serve(w, &reqs[tail]);
			/* Reset the queue with the handler held off: it may have just added one. */
			sigprocmask(SIG_BLOCK, &req, NULL);
			if (req_head == head)
				req_head = tail = 0;
			sigprocmask(SIG_UNBLOCK, &req, NULL);
			if (stop)
				return;
			/* The time a check took is ours, not a gap in the guest's time. */
			prev = now_ns();
		}
		for (k = 0; k < batch; k++) {
			i = (prng_next(&w->rng) >> 11) % w->pages;
			if (i == w->corrupted)
				continue;
			stamp_fill(w->mem + i * WORDS, i, w->versions[i] + 1);
			/* Page first, then its version: a check sees both or neither. */
			w->versions[i]++;
			w->writes++;
		}
		now = now_ns();
		if (now < prev)
			w->backwards++;
		else if (now - prev > w->max_gap_ns)
			w->max_gap_ns = now - prev;
		prev = now;
		if (!period)
			continue;
		next += period;
		/* Far behind (the guest was paused): start afresh rather than burst. */
		if (now > next + 1000000000ULL)
			next = now;
		t.tv_sec = (time_t)(next / 1000000000ULL);
		t.tv_nsec = (long)(next % 1000000000ULL);
		/* EINTR (a request) ends the sleep early; it is served first, then the pace goes on. */
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
	}
}

static void die_child(int fd, const char *what)
{
	char msg[200];
	int n = snprintf(msg, sizeof(msg), "KMWORK error: %s: %s", what, strerror(errno));

	if (n > 0 && write(fd, msg, (size_t)n) < 0)
		_exit(1);
	_exit(1);
}

/* The daemon's side of start: set up, tell the parent through fd, run. */
static void daemon_main(struct work *w, int fd)
{
	char path[300], text[32];
	struct sigaction sa;
	uint64_t i;
	int null;

	setsid();
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_request;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIG_REQ, &sa, NULL) < 0)
		die_child(fd, "sigaction");
	w->mem = mmap(NULL, w->pages * PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	w->versions = calloc(w->pages, sizeof(*w->versions));
	if (w->mem == MAP_FAILED || !w->versions)
		die_child(fd, "cannot allocate the pages");
	for (i = 0; i < w->pages; i++) {
		stamp_fill(w->mem + i * WORDS, i, 1);
		w->versions[i] = 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &w->start);
	snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	if (path_in(path, sizeof(path), w->dir, "kmwork.pid", 0) != 0 ||
	    (errno = -write_atomic(path, text)) != 0)
		die_child(fd, "cannot write the pid file");
	/*
	 * Nothing of the caller's kept open: a $(kmwork start) would wait for
	 * the daemon's end otherwise. But stderr on a terminal (the guest's
	 * console) stays: if the daemon dies of something, the console says so.
	 */
	null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		if (!isatty(2))
			dup2(null, 2);
		if (null > 2)
			close(null);
	}
	if (write(fd, "", 1) != 1)
		_exit(1);
	close(fd);
	work_run(w);
	unlink(path);
	_exit(0);
}

/* The daemon's pid from the pid file, if that process is a kmwork; else 0. */
static pid_t daemon_pid(const char *dir)
{
	char path[300], buf[64];
	long pid;

	if (path_in(path, sizeof(path), dir, "kmwork.pid", 0) != 0 ||
	    read_small(path, buf, sizeof(buf)) != 0)
		return 0;
	pid = strtol(buf, NULL, 10);
	if (pid <= 0 || kill((pid_t)pid, 0) < 0)
		return 0;
	/* A stale file whose pid went to another program: no daemon (no /proc: trust it). */
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	if (read_small(path, buf, sizeof(buf)) == 0 && strcmp(buf, "kmwork\n") != 0)
		return 0;
	return (pid_t)pid;
}

static int cmd_start(const char *dir, uint64_t mib, uint64_t rate, uint64_t seed)
{
	struct work w;
	char msg[200];
	int fds[2];
	ssize_t n;
	pid_t pid;

	if ((pid = daemon_pid(dir)) != 0) {
		printf("KMWORK start: already running pid=%ld\n", (long)pid);
		return 1;
	}
	memset(&w, 0, sizeof(w));
	w.pages = mib * (1024 * 1024 / PAGE);
	w.rate = rate;
	w.corrupted = UINT64_MAX;
	w.rng.s = prng_mix64(seed) | 1;
	snprintf(w.dir, sizeof(w.dir), "%s", dir);
	if (pipe2(fds, O_CLOEXEC) < 0) {
		printf("KMWORK error: pipe: %s\n", strerror(errno));
		return 1;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		printf("KMWORK error: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		close(fds[0]);
		daemon_main(&w, fds[1]);
	}
	close(fds[1]);
	/* One byte: ready. A message: why not. Nothing: it died. */
	do
		n = read(fds[0], msg, sizeof(msg) - 1);
	while (n < 0 && errno == EINTR);
	close(fds[0]);
	if (n == 1 && msg[0] == 0) {
		printf("KMWORK started pid=%ld pages=%" PRIu64 " rate=%" PRIu64 "\n",
		       (long)pid, w.pages, rate);
		return 0;
	}
	msg[n > 0 ? n : 0] = 0;
	printf("%s\n", n > 0 ? msg : "KMWORK error: the daemon died while starting");
	return 1;
}

static int cmd_request(const char *dir, const char *name, int cmd, uint64_t page)
{
	char path[300], out[REPLY_MAX];
	union sigval v = { .sival_int = cmd | (int)(page << 2) };
	struct timespec slice = { 1, 0 };
	siginfo_t si;
	sigset_t set;
	pid_t pid;
	int waited, sig;

	sigemptyset(&set);
	sigaddset(&set, SIG_REPLY);
	/* Blocked before asking: the answer cannot come before we wait for it. */
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (path_in(path, sizeof(path), dir, "kmwork.reply", (long)getpid()) != 0) {
		printf("KMWORK error: %s: path too long\n", dir);
		return 1;
	}
	unlink(path);
	pid = daemon_pid(dir);
	if (!pid || sigqueue(pid, SIG_REQ, v) < 0) {
		printf("KMWORK %s: no daemon\n", name);
		return 1;
	}
	for (waited = 0; waited < WAIT_S; waited++) {
		sig = sigtimedwait(&set, &si, &slice);
		if (sig == SIG_REPLY && si.si_pid == pid)
			break;
		if (sig < 0 && errno == EAGAIN && kill(pid, 0) < 0) {
			printf("KMWORK %s: no daemon (it ended before answering)\n", name);
			return 1;
		}
	}
	if (waited == WAIT_S || read_small(path, out, sizeof(out)) != 0) {
		printf("KMWORK error: %s: no answer from pid=%ld\n", name, (long)pid);
		return 1;
	}
	unlink(path);
	printf("%s\n", out);
	if (cmd == CMD_STOP) {
		/* The answer comes before the exit: wait for it, so that "stopped" means gone. */
		while (kill(pid, 0) == 0 && waited++ < WAIT_S * 100)
			nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	}
	return strncmp(out, "KMWORK error", 12) == 0;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: kmwork start [--mib N] [--rate PAGES_PER_S] [--seed S]\n"
"       kmwork check | corrupt [PAGE] | stop\n"
"       kmwork disk-write DEV --blocks N [--version V]\n"
"       kmwork disk-verify DEV [--blocks N] [--version V]\n"
"A daemon writing pages stamped with (index, version, checksum) at a rate,\n"
"which checks on request that no write was lost (see the top of kmwork.c).\n"
"  --mib N     memory to write, MiB (default 16)\n"
"  --rate R    pages written per second; 0: as fast as it can (default 1000)\n"
"  --seed S    the pages' order (default 1)\n"
"disk-write stamps blocks 0..N-1 of DEV (a device or a file) with version V\n"
"(default 1) and syncs; disk-verify reads them back (default: all of DEV) and\n"
"counts the bad ones (and, with --version, those of another version).\n"
"Answers are one line starting KMWORK; exit status 0, 1 (failed, no daemon),\n"
"2 (usage). The pid and reply files are in $KMWORK_DIR (default /tmp).\n");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	v = strtoull(s, &end, 0);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "rate", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, 's' },
		{ "blocks", required_argument, NULL, 'b' },
		{ "version", required_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t mib = 16, rate = 1000, seed = 1, page = UINT64_MAX >> 2, blocks = 0, version = 0;
	const char *dir = getenv("KMWORK_DIR"), *cmd;
	int c;

	if (!dir || !*dir)
		dir = "/tmp";
	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		usage(stderr);
		return 2;
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	if (strcmp(cmd, "start") == 0) {
		while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
			int r = 0;

			switch (c) {
			case 'm': r = parse_u64(optarg, MIB_MAX, &mib); break;
			case 'r': r = parse_u64(optarg, UINT32_MAX, &rate); break;
			case 's': r = parse_u64(optarg, UINT64_MAX, &seed); break;
			case 'h': usage(stdout); return 0;
			default: usage(stderr); return 2;
			}
			if (r || (c == 'm' && mib == 0)) {
				fprintf(stderr, "KMWORK start: bad --%s %s\n", c == 'm' ? "mib" :
					c == 'r' ? "rate" : "seed", optarg);
				return 2;
			}
		}
		if (optind != argc) {
			usage(stderr);
			return 2;
		}
		return cmd_start(dir, mib, rate, seed);
	}
	if (strncmp(cmd, "disk-", 5) == 0) {
		const char *dev = argv[optind];

		/* DEV first: option parsing stopped at the command, in order (+). */
		if (optind >= argc || dev[0] == '-') {
			usage(stderr);
			return 2;
		}
		optind++;
		while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
			int r;

			if (c == 'b')
				r = parse_u64(optarg, UINT64_MAX / PAGE, &blocks);
			else if (c == 'V')
				r = parse_u64(optarg, UINT64_MAX, &version);
			else
				r = -EINVAL;
			if (r) {
				usage(stderr);
				return 2;
			}
		}
		if (optind != argc) {
			usage(stderr);
			return 2;
		}
		if (strcmp(cmd, "disk-write") == 0 && blocks)
			return disk_write(dev, blocks, version ? version : 1);
		if (strcmp(cmd, "disk-verify") == 0)
			return disk_verify(dev, blocks, version);
		usage(stderr);
		return 2;
	}
	if (strcmp(cmd, "corrupt") == 0 && optind + 1 == argc) {
		/* The page travels in the signal's int beside the command: 29 bits. */
		if (parse_u64(argv[optind], (1ULL << 28) - 1, &page) != 0) {
			fprintf(stderr, "KMWORK corrupt: bad page %s\n", argv[optind]);
			return 2;
		}
		optind++;
	} else if (strcmp(cmd, "corrupt") == 0) {
		page = (1ULL << 28) - 1;	/* out of range: the daemon takes N/2 */
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (strcmp(cmd, "check") == 0)
		return cmd_request(dir, cmd, CMD_CHECK, 0);
	if (strcmp(cmd, "corrupt") == 0)
		return cmd_request(dir, cmd, CMD_CORRUPT, page);
	if (strcmp(cmd, "stop") == 0)
		return cmd_request(dir, cmd, CMD_STOP, 0);
	usage(stderr);
	return 2;
}
