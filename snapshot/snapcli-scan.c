/*
 * One pass over a checkpoint file without a VM: what verify and inspect
 * both need (snapcli.h). The record stream is read through ckptfile.h; the
 * checks past it are the ones a restore would trip over, found here first
 * so that "not restorable" is said before a restore is tried.
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


#include "buf.h"
#include "chan.h"
#include "err.h"
#include "record.h"
#include "stream.h"
#include "kvm/state.h"
#include "kvm/vmrec.h"
#include "snapshot/ckptfile.h"
#include "snapshot/snapcli.h"
#include "snapshot/store.h"

#define SNAPCLI_VCPUS_MAX	64	/* vcpu_ids is a u64 mask (KM_MAX_VCPUS <= 64) */

/* The gpas of the page entries seen, for the count of distinct pages. */
struct scan_gpas {
	uint64_t *v;
	size_t n, cap;
};

static int scan__damage(struct snapcli_file *f, const char *path, uint64_t rec, const char *fmt,
			...) __attribute__((format(printf, 4, 5)));

/* Notes the first damage as "PATH: record N: damaged (WHAT)"; returns KM_ERR_CORRUPT. */
static int scan__damage(struct snapcli_file *f, const char *path, uint64_t rec, const char *fmt,
			...)
{
	char what[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(f->why, sizeof(f->why), "%s: record %" PRIu64 ": damaged (%s)", path, rec, what);
	f->err = KM_ERR_CORRUPT;
	f->err_record = rec;
	return KM_ERR_CORRUPT;
}

static int scan__cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int scan__add_gpa(struct scan_gpas *g, uint64_t gpa)
{
	uint64_t *nv;
	size_t cap;

	if (g->n == g->cap) {
		cap = g->cap ? g->cap * 2 : 1024;
		if ((nv = realloc(g->v, cap * sizeof(*nv))) == NULL)
			return -ENOMEM;
		g->v = nv;
		g->cap = cap;
	}
	g->v[g->n++] = gpa;
	return 0;
}

static uint64_t scan__distinct(struct scan_gpas *g)
{
	uint64_t k = 0;
	size_t i;

	if (g->n == 0)
		return 0;
	qsort(g->v, g->n, sizeof(*g->v), scan__cmp_u64);
	for (i = 0; i < g->n; i++)
		if (i == 0 || g->v[i] != g->v[i - 1])
			k++;
	return k;
}

/* The entries of one REC_PAGES payload: counted, bounded, lz4 ones expanded. */
static int scan__pages(struct snapcli_file *f, const char *path, uint64_t rec, const uint8_t *p,
		       uint32_t len, struct scan_gpas *g)
{
	uint8_t page[PAGE_SIZE_4K];
	enum page_kind kind;
	const uint8_t *data;
	struct buf *b;
	uint64_t gpa, entry = 0;
	uint32_t dlen;
	int r;

	if ((b = buf_view(p, len)) == NULL)
		return -ENOMEM;
	for (;; entry++) {
		if ((r = pages_get(b, &gpa, &kind, &data, &dlen)) == KM_ERR_END) {
			r = 0;
			break;
		}
		if (r != 0) {
			r = scan__damage(f, path, rec, "page entry %" PRIu64 ": %s", entry,
					 r == KM_ERR_TRUNCATED ? "runs past its record" :
					 "an unknown kind or a bad length");
			break;
		}
		if (kind == PAGE_LZ4 && !(f->caps & STREAM_CAP_LZ4)) {
			r = scan__damage(f, path, rec, "page entry %" PRIu64 ": lz4, which the "
					 "header does not announce", entry);
			break;
		}
		if (kind == PAGE_LZ4 && pages_expand(kind, data, dlen, page) != 0) {
			r = scan__damage(f, path, rec, "page entry %" PRIu64 " (guest address "
					 "0x%" PRIx64 "): does not decompress to one page", entry,
					 gpa);
			break;
		}
		if ((r = scan__add_gpa(g, gpa)) != 0)
			break;
		f->pages++;
		f->kind_pages[kind]++;
		f->kind_bytes[kind] += dlen;
	}
	buf_free(b);
	f->page_recs++;
	return r;
}

/* The blocks of one REC_DISK_BLOCKS payload: bounded, lz4 ones expanded, of the config's disk. */
static int scan__disk(struct snapcli_file *f, const char *path, uint64_t rec, const uint8_t *p,
		      uint32_t len)
{
	char why[256];
	uint64_t n = 0, size = 0;
	int r;

	if (!f->configs || !f->disk || f->disk_ro)
		return scan__damage(f, path, rec, "disk blocks, but the VM config names no "
				    "writable disk");
	r = vmrec_disk_walk(p, len, f->disk_size, (f->caps & STREAM_CAP_LZ4) != 0, NULL, NULL,
			    &size, &n, why, sizeof(why));
	f->disk_blocks += n;
	f->disk_recs++;
	if (r != 0)
		return scan__damage(f, path, rec, "%s", why);
	f->disk_size = size;
	return 0;
}

static int scan__config(struct snapcli_file *f, const char *path, uint64_t rec, const uint8_t *p,
			uint32_t len)
{
	uint64_t mem, vcpus, ro;
	const uint8_t *d;
	uint32_t dlen;

	if (rec_find_u64(p, len, ST_CFG_MEM_SIZE, &mem) != 0 ||
	    rec_find_u64(p, len, ST_CFG_NR_VCPUS, &vcpus) != 0)
		return scan__damage(f, path, rec, "a VM config without its memory size or vCPU "
				    "count");
	if (vcpus == 0 || vcpus > SNAPCLI_VCPUS_MAX || mem == 0 || mem % PAGE_SIZE_4K)
		return scan__damage(f, path, rec, "a VM config of %" PRIu64 " vCPUs and %" PRIu64
				    " bytes of memory", vcpus, mem);
	if (f->configs++ > 0) {
		/* The writer repeats it with the state (state__save_all): the same one. */
		if (mem != f->mem_size || vcpus != f->nr_vcpus)
			return scan__damage(f, path, rec, "a second VM config unlike the first");
		return 0;
	}
	f->mem_size = mem;
	f->nr_vcpus = vcpus;
	f->disk = rec_find_field(p, len, ST_CFG_DISK, &d, &dlen) == 0;
	f->disk_ro = rec_find_u64(p, len, ST_CFG_DISK_RO, &ro) == 0 && ro;
	if (rec_find_u64(p, len, ST_CFG_DISK_SIZE, &f->disk_size) != 0)
		f->disk_size = 0;
	if (rec_find_field(p, len, ST_CFG_NAME, &d, &dlen) == 0 && dlen < sizeof(f->name))
		memcpy(f->name, d, dlen);
	return 0;
}

static int scan__vcpu(struct snapcli_file *f, const char *path, uint64_t rec, const uint8_t *p,
		      uint32_t len)
{
	uint64_t id;

	if (rec_find_u64(p, len, ST_VCPU_ID, &id) != 0)
		return scan__damage(f, path, rec, "a vCPU state without its vCPU id");
	if (id >= SNAPCLI_VCPUS_MAX || (f->configs && id >= f->nr_vcpus))
		return scan__damage(f, path, rec, "the state of vCPU %" PRIu64 ", of %" PRIu64,
				    id, f->nr_vcpus);
	if (f->vcpu_ids & (1ULL << id))
		return scan__damage(f, path, rec, "a second state for vCPU %" PRIu64, id);
	f->vcpu_ids |= 1ULL << id;
	f->vcpu_states++;
	return 0;
}

/* What the header says of its version, which ckptfile_open checked but does not keep. */
static void scan__version(const char *path, struct snapcli_file *f)
{
	struct chan *c = NULL;
	struct stream *s = NULL;
	const uint8_t *p;
	uint32_t type, len;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return;
	if (chan_file(fd, path, &c) != 0) {
		close(fd);
		return;
	}
	if ((s = stream_new(c)) != NULL && stream_get(s, 4096, &type, &p, &len) == 0 &&
	    type == REC_HEADER && len >= 8 &&
	    rec_find_u64(p + 8, len - 8, HDR_VERSION_MAJOR, &f->major) == 0) {
		if (rec_find_u64(p + 8, len - 8, HDR_VERSION_MINOR, &f->minor) != 0)
			f->minor = 0;
	}
	stream_free(s);
	chan_close(c);
}

/* Past REC_END: nothing more may follow (a file is exactly its records). */
static int scan__after_end(struct snapcli_file *f, const char *path, struct ckptfile *cf)
{
	const uint8_t *p;
	uint32_t type, len;
	uint64_t rec = cf->record;
	int r;

	if (f->configs == 0)
		return scan__damage(f, path, rec, "the end, but no VM config came before it");
	if (f->vm_states == 0)
		return scan__damage(f, path, rec, "the end, but no VM state came before it");
	if (f->vcpu_states != f->nr_vcpus)
		return scan__damage(f, path, rec, "the end, but only %u of %" PRIu64 " vCPUs' "
				    "states came before it", f->vcpu_states, f->nr_vcpus);
	if (f->end.pages != f->pages)
		return scan__damage(f, path, rec, "the end counts %" PRIu64 " page entries, the "
				    "file has %" PRIu64, f->end.pages, f->pages);
	if (f->disk && !f->disk_ro && !f->end.has_disk)
		return scan__damage(f, path, rec, "the VM has a writable disk, and the file holds "
				    "none of its content (a restore would pair its memory with "
				    "another disk)");
	if (f->end.has_disk && f->end.disk_blocks != f->disk_blocks)
		return scan__damage(f, path, rec, "the end counts %" PRIu64 " disk blocks, the "
				    "file has %" PRIu64, f->end.disk_blocks, f->disk_blocks);
	r = stream_get(cf->s, REC_MAX_PAYLOAD, &type, &p, &len);
	if (r == KM_ERR_END)
		return 0;
	return scan__damage(f, path, rec + 1, "data after the end record");
}

/*
 * A file with a page index: the index a writer would make of its page
 * records (ckptfile_index_add), against the one it holds, byte for byte.
 * The records' checksums were checked by the scan; this reads them again
 * by offset, as a lazy restore does.
 */
static int scan__index(struct snapcli_file *f, const char *path)
{
	struct buf *want = buf_new(REC_MAX_PAYLOAD), *got = buf_new(REC_MAX_PAYLOAD);
	uint8_t hdr[REC_HDR_SIZE], *payload = malloc(REC_MAX_PAYLOAD);
	uint64_t off = 0, rec = 0, first_ix = 0;
	uint32_t type, len;
	int fd = -1, r = -ENOMEM;

	if (!want || !got || !payload)
		goto out;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		r = km_errno();
		goto out;
	}
	for (;; rec++) {
		if (pread(fd, hdr, sizeof(hdr), (off_t)off) != (ssize_t)sizeof(hdr) ||
		    rec_frame(hdr, sizeof(hdr) + REC_MAX_PAYLOAD, REC_MAX_PAYLOAD, &type, &len) != 0) {
			r = scan__damage(f, path, rec, "cannot be read again by offset");
			goto out;
		}
		if (type == REC_END)
			break;
		if ((type == REC_PAGES || type == REC_PAGE_INDEX) &&
		    pread(fd, payload, len, (off_t)(off + REC_HDR_SIZE)) != (ssize_t)len) {
			r = scan__damage(f, path, rec, "cannot be read again by offset");
			goto out;
		}
		if (type == REC_PAGES && (r = ckptfile_index_add(want, off, payload, len)) != 0) {
			r = scan__damage(f, path, rec, "its page entries cannot be indexed (%s)",
					 km_strerror(r));
			goto out;
		}
		if (type == REC_PAGE_INDEX) {
			if (!first_ix)
				first_ix = rec;
			if (buf_put(got, payload, len) != 0) {
				r = scan__damage(f, path, rec, "the page index is larger than its "
						 "page records'");
				goto out;
			}
		}
		off += REC_HDR_SIZE + len;
	}
	r = 0;
	if (buf_len(got) != buf_len(want) || memcmp(buf_ptr(got), buf_ptr(want), buf_len(got)))
		r = scan__damage(f, path, first_ix, "its page index does not match its page "
				 "records (a lazy restore would refuse it or stop on it)");
out:
	if (r == -ENOMEM)
		r = scan__damage(f, path, UINT64_MAX, "out of memory");
	if (fd >= 0)
		close(fd);
	free(payload);
	buf_free(want);
	buf_free(got);
	return r;
}

int snapcli__scan_file(const char *path, struct snapcli_file *f)
{
	struct scan_gpas g = { 0 };
	struct ckptfile cf;
	const uint8_t *p;
	uint32_t type, len;
	int r;

	memset(f, 0, sizeof(*f));
	f->err_record = UINT64_MAX;
	if ((r = ckptfile_open(path, &cf, f->why, sizeof(f->why))) != 0) {
		f->err = r;
		f->missing = r == -ENOENT;
		/* A failed open(2) is no record's; else the header (0) or the identity (1). */
		if (r >= KM_ERR_BASE && r < KM_ERR_LAST)
			f->err_record = cf.record;
		return r;
	}
	f->have_header = true;
	f->have_id = true;
	f->caps = cf.caps;
	f->id = cf.id;
	f->records = 2;
	scan__version(path, f);
	for (;;) {
		r = ckptfile_next(&cf, &type, &p, &len, f->why, sizeof(f->why));
		f->records = cf.record + 1;
		if (r == KM_ERR_END)
			break;
		if (r != 0) {
			f->err = r;
			f->err_record = cf.record;
			goto out;
		}
		switch (type) {
		case REC_PAGES:
			r = scan__pages(f, path, cf.record, p, len, &g);
			break;
		case REC_VM_CONFIG:
			r = scan__config(f, path, cf.record, p, len);
			break;
		case REC_VM_STATE:
			f->vm_states++;
			break;
		case REC_VCPU_STATE:
			r = scan__vcpu(f, path, cf.record, p, len);
			break;
		case REC_PAGE_INDEX:
			f->index_recs++;
			break;
		case REC_DISK_BLOCKS:
			r = scan__disk(f, path, cf.record, p, len);
			break;
		default:
			/* Known types a checkpoint has no use for (a round's end): harmless. */
			break;
		}
		if (r != 0)
			goto out;
	}
	f->ended = true;
	f->end = cf.end;
	r = scan__after_end(f, path, &cf);
	if (r == 0 && f->index_recs)
		r = scan__index(f, path);
out:
	if (r == -ENOMEM && !f->err) {
		f->err = r;
		snprintf(f->why, sizeof(f->why), "%s: %s", path, km_strerror(r));
	}
	f->distinct = scan__distinct(&g);
	free(g.v);
	ckptfile_close(&cf);
	return r;
}

int snapcli__hash_file(const char *path, uint64_t *bytes, uint64_t *hash)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), r;

	if (fd < 0)
		return km_errno();
	/* The same reading the store does when it lists a file. */
	r = store__file_hash(fd, bytes, hash);
	close(fd);
	return r;
}

/* ---- small shared helpers -------------------------------------------------- */

void snapcli__time(uint64_t ns, bool iso, char *out, size_t len)
{
	time_t t = (time_t)(ns / 1000000000ULL);
	unsigned int ms = (unsigned int)(ns % 1000000000ULL / 1000000);
	char date[40], zone[8] = "";
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL) {
		snprintf(out, len, "@%" PRIu64, ns);
		return;
	}
	strftime(date, sizeof(date), iso ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &tm);
	if (iso && strftime(zone, sizeof(zone), "%z", &tm) == 5) {
		/* +0100 -> +01:00, as RFC 3339 has it */
		zone[6] = 0;
		zone[5] = zone[4];
		zone[4] = zone[3];
		zone[3] = ':';
	}
	snprintf(out, len, "%s.%03u%s", date, ms, zone);
}

const char *snapcli__kind(uint64_t kind)
{
	return kind == STORE_FULL ? "base" : kind == STORE_INCR ? "incr" : "unknown";
}

const char *snapcli__hex(uint64_t v, char *out, size_t len)
{
	snprintf(out, len, "0x%016" PRIx64, v);
	return out;
}

void snapcli__print_json(json_t *doc)
{
	char *txt = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);

	printf("%s\n", txt ? txt : "{}");
	free(txt);
	json_decref(doc);
}

const struct store_entry *snapcli__find(const struct store_entry *e, size_t n, uint64_t id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (e[i].id == id)
			return &e[i];
	return NULL;
}
