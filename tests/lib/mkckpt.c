/*
 * mkckpt: builds checkpoint directories without KVM, for the kvm-snapshot
 * tests (tests/snapshot-cli.sh), with the real writers: store.h commits,
 * ckptfile.h identity and end, lib/pages.h page entries over lib/stream.
 *
 *   mkckpt DIR --chain full,incr,incr,full,incr [--pages N] [--vcpus N] [--name NAME]
 *       appends those checkpoints to the store DIR (made if need be; an
 *       empty SPEC makes just that). An increment is taken on the
 *       checkpoint before it (the first one of SPEC on the newest listed).
 *       Each file is laid out as the VM's checkpoint writer lays it out:
 *       header, identity, config, pages (a base N of them, an increment
 *       N/4: zero, random = raw, text = lz4, 8 to a record), their page
 *       index (ckptfile.h, as the writer makes it), config again
 *       with the VM state and one state per vCPU, end (with a memory hash
 *       for bases). The content depends only on the ids and the options:
 *       the same command gives the same files.
 *   mkckpt DIR --manifest-major N
 *       rewrites the manifest's header with major version N (a store from
 *       a newer kvm-migrate), the rest unchanged.
 *
 * Prints the ids it committed, one a line. Exit 0, 1 on failure, 2 usage.
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "chan.h"
#include "err.h"
#include "pages.h"
#include "parse.h"
#include "record.h"
#include "stream.h"
#include "kvm/state.h"
#include "snapshot/ckptfile.h"
#include "snapshot/store.h"

#define MK_MEM_SIZE	(16ULL << 20)			/* the smallest VM kvm-run makes */
#define MK_PAGES	512U				/* pages are written among the first 512 */
#define MK_BATCH	8				/* page entries per REC_PAGES */
#define MK_EPOCH_NS	1767225600000000000ULL		/* 2026-01-01 00:00:00 UTC */

struct mk {
	const char *dir;
	unsigned int pages, vcpus;
	const char *name;
	struct store *st;
};

/* xorshift64: "random" pages that come out the same every run. */
static uint64_t mk_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Page n of checkpoint id: 0 zero, 1 random (raw), 2 text (lz4). */
static void mk_page(uint8_t *page, uint64_t id, uint64_t n, unsigned int kind)
{
	uint64_t s = (id << 32 | n) * 0x9e3779b97f4a7c15ULL | 1, v;
	size_t off = 0, i;
	int w;

	memset(page, 0, PAGE_SIZE_4K);
	if (kind == 1) {
		for (i = 0; i < PAGE_SIZE_4K; i += 8) {
			v = mk_next(&s);
			memcpy(page + i, &v, 8);
		}
	} else if (kind == 2) {
		while (off < PAGE_SIZE_4K - 1) {
			w = snprintf((char *)page + off, PAGE_SIZE_4K - off, "checkpoint %" PRIu64
				     " page %" PRIu64 ": all work and no play. ", id, n);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
	}
}

static int mk_config(struct mk *m, struct stream *s)
{
	struct buf *b = buf_new(4096);
	uint8_t slot[24] = { 0 };
	uint64_t size = MK_MEM_SIZE;
	int r;

	if (!b)
		return -ENOMEM;
	memcpy(slot + 8, &size, 8);	/* gpa 0, size, memfd offset 0 (little-endian host) */
	if ((r = rec_put_field_u64(b, ST_CFG_MEM_SIZE, MK_MEM_SIZE)) == 0 &&
	    (r = rec_put_field_u64(b, ST_CFG_NR_VCPUS, m->vcpus)) == 0 &&
	    (r = rec_put_field_u64(b, ST_CFG_IRQCHIP, 1)) == 0 &&
	    (r = rec_put_field(b, ST_CFG_SLOT, slot, sizeof(slot))) == 0 &&
	    (r = rec_put_field(b, ST_CFG_NAME, m->name, (uint32_t)strlen(m->name))) == 0)
		r = stream_put(s, REC_VM_CONFIG, buf_ptr(b), (uint32_t)buf_len(b));
	buf_free(b);
	return r;
}

/* The pages of checkpoint id (index k in SPEC); *count: the entries written. */
static int mk_pages(struct mk *m, struct stream *s, uint64_t id, unsigned int k, bool full,
		    uint64_t *count)
{
	struct buf *b = buf_new(MK_BATCH * PAGES_ENTRY_MAX);
	struct ckptfile_index ix = { 0 };
	struct pages_stats ps = { 0 };
	uint8_t page[PAGE_SIZE_4K];
	unsigned int j, want = full ? m->pages : (m->pages + 3) / 4;
	uint64_t n;
	int r = 0;

	if (!b || (r = ckptfile_index_init(&ix)) != 0) {
		buf_free(b);
		return -ENOMEM;
	}
	for (j = 0; j < want && r == 0; j++) {
		n = full ? j % MK_PAGES : (k * 37ULL + j * 11ULL) % MK_PAGES;
		mk_page(page, id, n, (unsigned int)((n + (full ? 0 : k)) % 3));
		if ((r = pages_put(b, n * PAGE_SIZE_4K, page, true, &ps)) != 0)
			break;
		/* As the checkpoint writer does: each page record indexed (a lazy restore's). */
		if ((j + 1) % MK_BATCH == 0 || j + 1 == want) {
			r = ckptfile_put_pages(s, &ix, &b);
			buf_discard(b);
		}
	}
	if (r == 0)
		r = ckptfile_put_index(s, &ix);
	ckptfile_index_free(&ix);
	buf_free(b);
	*count = ps.pages;
	return r;
}

/* The machine state as state__save_all lays it out: config, VM, each vCPU. */
static int mk_state(struct mk *m, struct stream *s, uint64_t id)
{
	struct buf *b = buf_new(4096);
	uint8_t blob[144];
	unsigned int i;
	int r;

	if (!b)
		return -ENOMEM;
	memset(blob, (int)(id & 0xff), sizeof(blob));
	if ((r = mk_config(m, s)) != 0 ||
	    (r = rec_put_field(b, ST_VM_CLOCK, blob, 48)) != 0 ||
	    (r = stream_put(s, REC_VM_STATE, buf_ptr(b), (uint32_t)buf_len(b))) != 0)
		goto out;
	for (i = 0; i < m->vcpus; i++) {
		buf_discard(b);
		blob[0] = (uint8_t)i;
		if ((r = rec_put_field_u64(b, ST_VCPU_ID, i)) != 0 ||
		    (r = rec_put_field(b, ST_REGS, blob, sizeof(blob))) != 0 ||
		    (r = stream_put(s, REC_VCPU_STATE, buf_ptr(b), (uint32_t)buf_len(b))) != 0)
			goto out;
	}
out:
	buf_free(b);
	return r;
}

/* One checkpoint, begin to commit; *id its id. */
static int mk_one(struct mk *m, bool full, uint64_t parent, unsigned int k, uint64_t *id)
{
	struct store_pending p = { .fd = -1 };
	struct store_entry e = { 0 };
	struct ckptfile_end end = { 0 };
	struct chan *c = NULL;
	struct stream *s = NULL;
	char err[1024] = "";
	uint64_t pages = 0;
	int fd, r;

	if ((r = store__begin(m->st, &p, err, sizeof(err))) != 0)
		goto out;
	/* The store keeps p.fd (its lock marks the file alive): the stream gets a copy. */
	if ((fd = fcntl(p.fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		r = km_errno();
		goto out;
	}
	if ((r = chan_file(fd, p.tmp, &c)) != 0) {
		close(fd);
		goto out;
	}
	end.capture_ns = MK_EPOCH_NS + p.id * 60000000000ULL + p.id * 1000000ULL;
	end.pause_ns = 1000000ULL + p.id * 250000ULL;
	end.has_hash = full;
	end.hash = 0x6d6b636b70740000ULL | p.id;
	if (!(s = stream_new(c)))
		r = -ENOMEM;
	else if ((r = stream_put_header(s, STREAM_SNAPSHOT, STREAM_CAP_LZ4)) == 0 &&
		 (r = ckptfile_put_identity(s, p.id, parent, full ? STORE_FULL : STORE_INCR,
					    m->name)) == 0 &&
		 (r = mk_config(m, s)) == 0 && (r = mk_pages(m, s, p.id, k, full, &pages)) == 0 &&
		 (r = mk_state(m, s, p.id)) == 0) {
		end.pages = pages;
		if ((r = ckptfile_put_end(s, &end)) == 0)
			r = stream_flush(s);
	}
	if (r != 0)
		goto out;
	e.kind = full ? STORE_FULL : STORE_INCR;
	e.parent = parent;
	e.time_ns = end.capture_ns;
	e.pages = pages;
	e.pause_ns = end.pause_ns;
	*id = p.id;
	r = store__commit(m->st, &p, &e, err, sizeof(err));
out:
	stream_free(s);
	chan_close(c);
	store__abort(m->st, &p);
	if (r != 0)
		fprintf(stderr, "mkckpt: %s: %s\n", m->dir, err[0] ? err : km_strerror(r));
	return r;
}

static int mk_chain(struct mk *m, const char *spec)
{
	struct store_entry *e = NULL;
	char err[1024] = "", *copy, *tok, *save = NULL;
	uint64_t parent = 0, id = 0;
	unsigned int k = 0;
	size_t n = 0;
	bool full;
	int r;

	if ((r = store__open(m->dir, true, &m->st, err, sizeof(err))) != 0 ||
	    (r = store__list(m->st, &e, &n, err, sizeof(err))) != 0) {
		fprintf(stderr, "mkckpt: %s\n", err);
		return r;
	}
	if (n > 0)
		parent = e[n - 1].id;
	free(e);
	if ((copy = strdup(spec)) == NULL)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save), k++) {
		full = !strcmp(tok, "full") || !strcmp(tok, "base");
		if (!full && strcmp(tok, "incr")) {
			fprintf(stderr, "mkckpt: --chain: '%s' is neither full nor incr\n", tok);
			r = KM_ERR_INVALID;
			break;
		}
		if (!full && parent == 0) {
			fprintf(stderr, "mkckpt: --chain: an increment with nothing before it\n");
			r = KM_ERR_INVALID;
			break;
		}
		if ((r = mk_one(m, full, full ? 0 : parent, k, &id)) != 0)
			break;
		printf("%" PRIu64 "\n", id);
		parent = id;
	}
	free(copy);
	store__close(m->st);
	return r;
}

/* The manifest with its header's major version replaced; records after it as they are. */
static int mk_manifest_major(const char *dir, uint64_t major)
{
	char path[4200], tmp[4300];
	struct buf *in = NULL, *hdr = NULL, *out = NULL, *fields = NULL;
	const uint8_t *p, *d;
	uint32_t type, len, tag, dlen;
	uint8_t *dst;
	struct stat sb;
	ssize_t got;
	int fd = -1, r = -ENOMEM;

	snprintf(path, sizeof(path), "%s/manifest", dir);
	snprintf(tmp, sizeof(tmp), "%s/manifest.tmp", dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &sb) < 0) {
		r = km_errno();
		goto out;
	}
	if (!(in = buf_new((size_t)sb.st_size + 1)) || !(hdr = buf_new(4096)) ||
	    !(out = buf_new((size_t)sb.st_size + 4096)) ||
	    (r = buf_reserve(in, (size_t)sb.st_size, &dst)) != 0)
		goto out;
	if ((got = read(fd, dst, (size_t)sb.st_size)) != sb.st_size) {
		r = got < 0 ? km_errno() : KM_ERR_TRUNCATED;
		goto out;
	}
	close(fd);
	fd = -1;
	if ((r = rec_get(in, 4096, &type, &p, &len)) != 0)
		goto out;
	r = KM_ERR_CORRUPT;
	if (type != REC_HEADER || len < 8 || !(fields = buf_view(p + 8, len - 8)))
		goto out;
	if ((r = buf_put(hdr, p, 8)) != 0)
		goto out;
	while ((r = rec_get_field(fields, &tag, &d, &dlen)) == 0) {
		r = tag == STORE_HDR_MAJOR ? rec_put_field_u64(hdr, tag, major) :
			rec_put_field(hdr, tag, d, dlen);
		if (r != 0)
			goto out;
	}
	if (r != KM_ERR_END ||
	    (r = rec_put(out, REC_HEADER, buf_ptr(hdr), (uint32_t)buf_len(hdr))) != 0 ||
	    (r = buf_put(out, buf_ptr(in), buf_len(in))) != 0)
		goto out;
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
	    write(fd, buf_ptr(out), buf_len(out)) != (ssize_t)buf_len(out) ||
	    fsync(fd) < 0 || rename(tmp, path) < 0) {
		r = km_errno();
		goto out;
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (r != 0)
		fprintf(stderr, "mkckpt: %s: %s\n", path, km_strerror(r));
	buf_free(fields);
	buf_free(out);
	buf_free(hdr);
	buf_free(in);
	return r;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: mkckpt DIR --chain full,incr,... [--pages N] [--vcpus N] [--name NAME]\n"
		"       mkckpt DIR --manifest-major N\n");
}

int main(int argc, char **argv)
{
	enum { OPT_CHAIN = 256, OPT_PAGES, OPT_VCPUS, OPT_NAME, OPT_MAJOR };
	static const struct option longopts[] = {
		{ "chain", required_argument, NULL, OPT_CHAIN },
		{ "pages", required_argument, NULL, OPT_PAGES },
		{ "vcpus", required_argument, NULL, OPT_VCPUS },
		{ "name", required_argument, NULL, OPT_NAME },
		{ "manifest-major", required_argument, NULL, OPT_MAJOR },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mk m = { .pages = 48, .vcpus = 2, .name = "mkvm" };
	const char *chain = NULL;
	uint64_t v, major = 0;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_CHAIN:
			chain = optarg;
			break;
		case OPT_PAGES:
			if (parse_u64(optarg, 1, MK_PAGES, &v) != 0)
				goto bad;
			m.pages = (unsigned int)v;
			break;
		case OPT_VCPUS:
			if (parse_u64(optarg, 1, 64, &v) != 0)
				goto bad;
			m.vcpus = (unsigned int)v;
			break;
		case OPT_NAME:
			m.name = optarg;
			break;
		case OPT_MAJOR:
			if (parse_u64(optarg, 1, UINT32_MAX, &major) != 0)
				goto bad;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (argc - optind != 1 || !chain == !major)
		goto bad;
	m.dir = argv[optind];
	if (major)
		return mk_manifest_major(m.dir, major) ? 1 : 0;
	return mk_chain(&m, chain) ? 1 : 0;
bad:
	usage(stderr);
	return 2;
}
