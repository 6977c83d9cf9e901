/* Dirty traces, writer and reader: see dtrace.h and docs/format.md s.10. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "dtrace.h"
#include "err.h"
#include "record.h"
#include "stream.h"

#define VARINT_MAX	10	/* bytes of a LEB128 u64 */

struct dtrace_writer {
	int fd;
	struct dtrace_info info;
	struct buf *rec;		/* one record being framed */
	struct buf *pl;			/* its payload */
	struct buf *runs;		/* an interval's runs, encoded */
	uint64_t index, pages, bytes, ns;
};

static uint64_t dt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int dt_check_info(const struct dtrace_info *in)
{
	if (in->page_size < 512 || in->page_size > (1ULL << 30) ||
	    (in->page_size & (in->page_size - 1)) || in->guest_pages == 0 ||
	    in->guest_pages > DTRACE_MAX_PAGES || in->interval_ms == 0 ||
	    in->interval_ms > DTRACE_MAX_INTERVAL_MS || in->vcpus == 0 ||
	    in->vcpus > DTRACE_MAX_VCPUS)
		return KM_ERR_INVALID;
	return 0;
}

/* The payload in w->pl as one record of type, written out; the payload emptied. */
static int dt_emit(struct dtrace_writer *w, uint32_t type)
{
	const uint8_t *p;
	size_t left;
	ssize_t n;
	int r;

	buf_discard(w->rec);
	if ((r = rec_put(w->rec, type, buf_ptr(w->pl), (uint32_t)buf_len(w->pl))) != 0)
		goto out;
	p = buf_ptr(w->rec);
	left = buf_len(w->rec);
	while (left > 0) {
		n = write(w->fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? km_errno() : -EIO;
			goto out;
		}
		p += n;
		left -= (size_t)n;
	}
	w->bytes += buf_len(w->rec);
out:
	buf_discard(w->pl);
	return r;
}

int dtrace__writer_new(int fd, const struct dtrace_info *info, struct dtrace_writer **out)
{
	struct dtrace_writer *w;
	int r;

	*out = NULL;
	if ((r = dt_check_info(info)) != 0)
		return r;
	if (!(w = calloc(1, sizeof(*w))))
		return -ENOMEM;
	w->fd = fd;
	w->info = *info;
	w->info.version = DTRACE_VERSION;
	/* Runs never need more than a bitmap does (the writer picks the smaller). */
	if (!(w->rec = buf_new(REC_MAX_PAYLOAD + REC_HDR_SIZE)) ||
	    !(w->pl = buf_new(REC_MAX_PAYLOAD)) || !(w->runs = buf_new(REC_MAX_PAYLOAD))) {
		r = -ENOMEM;
		goto out;
	}
	buf_set_bulk(w->rec);
	buf_set_bulk(w->pl);
	buf_set_bulk(w->runs);
	if ((r = stream_header_payload(w->pl, STREAM_DTRACE, 0)) != 0 ||
	    (r = dt_emit(w, REC_HEADER)) != 0)
		goto out;
	if ((r = rec_put_field_u64(w->pl, DT_VERSION, DTRACE_VERSION)) != 0 ||
	    (r = rec_put_field_u64(w->pl, DT_PAGE_SIZE, info->page_size)) != 0 ||
	    (r = rec_put_field_u64(w->pl, DT_GUEST_PAGES, info->guest_pages)) != 0 ||
	    (r = rec_put_field_u64(w->pl, DT_INTERVAL_MS, info->interval_ms)) != 0 ||
	    (r = rec_put_field_u64(w->pl, DT_VCPUS, info->vcpus)) != 0 ||
	    (r = rec_put_field_u64(w->pl, DT_START_NS, info->start_wall_ns)) != 0 ||
	    (r = dt_emit(w, REC_DTRACE_INFO)) != 0)
		goto out;
	*out = w;
	return 0;
out:
	dtrace__writer_free(w);
	return r;
}

static int dt_put_varint(struct buf *b, uint64_t v)
{
	uint8_t tmp[VARINT_MAX];
	size_t n = 0;

	do {
		tmp[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	return buf_put(b, tmp, n);
}

/* The first bit at or after i whose value is want, or nbits. */
static uint64_t dt_next(const struct bitmap *b, uint64_t i, bool want)
{
	uint64_t w;

	while (i < b->nbits) {
		w = b->words[i / 64];
		if (!want)
			w = ~w;
		w >>= i % 64;
		if (w)
			i += (uint64_t)__builtin_ctzll(w);
		else
			i = (i / 64 + 1) * 64;
		if (w)
			return i < b->nbits ? i : b->nbits;
	}
	return b->nbits;
}

/*
 * The set as runs: varint(gap), varint(length - 1) each, where gap is the
 * distance from the end of the previous run (from 0 for the first). Stops
 * with KM_ERR_NO_SPACE once it outgrows limit: the bitmap is smaller then.
 */
static int dt_encode_runs(const struct bitmap *set, struct buf *out, size_t limit,
			  uint64_t *pages)
{
	uint64_t i = 0, end, prev = 0;
	int r;

	*pages = 0;
	while ((i = dt_next(set, i, true)) < set->nbits) {
		end = dt_next(set, i, false);
		if ((r = dt_put_varint(out, i - prev)) != 0 ||
		    (r = dt_put_varint(out, end - i - 1)) != 0)
			return r;
		if (buf_len(out) > limit)
			return KM_ERR_NO_SPACE;
		*pages += end - i;
		prev = end;
		i = end;
	}
	return 0;
}

int dtrace__put_interval(struct dtrace_writer *w, uint64_t duration_ns, const uint64_t *progress,
			 const struct bitmap *set)
{
	uint64_t t0 = dt_now_ns(), pages = 0, bm_bytes = (w->info.guest_pages + 7) / 8;
	int r;

	if (set->nbits != w->info.guest_pages || duration_ns > DTRACE_MAX_DURATION_NS)
		return KM_ERR_INVALID;
	buf_discard(w->runs);
	if ((r = rec_put_field_u64(w->pl, DI_INDEX, w->index)) != 0 ||
	    (r = rec_put_field_u64(w->pl, DI_DURATION_NS, duration_ns)) != 0 ||
	    (progress && (r = rec_put_field_u64(w->pl, DI_PROGRESS, *progress)) != 0))
		goto out;
	r = dt_encode_runs(set, w->runs, bm_bytes, &pages);
	if (r == 0) {
		if ((r = rec_put_field_u64(w->pl, DI_PAGES, pages)) == 0 && buf_len(w->runs))
			r = rec_put_field(w->pl, DI_RUNS, buf_ptr(w->runs),
					  (uint32_t)buf_len(w->runs));
	} else if (r == KM_ERR_NO_SPACE) {
		/* Scattered pages: the bitmap, bits in little-endian byte order (x86's words). */
		pages = bitmap_count(set);
		if ((r = rec_put_field_u64(w->pl, DI_PAGES, pages)) == 0)
			r = rec_put_field(w->pl, DI_BITMAP, set->words, (uint32_t)bm_bytes);
	}
	if (r != 0 || (r = dt_emit(w, REC_DTRACE_INTERVAL)) != 0)
		goto out;
	w->index++;
	w->pages += pages;
out:
	buf_discard(w->pl);
	w->ns += dt_now_ns() - t0;
	return r;
}

uint64_t dtrace__writer_bytes(const struct dtrace_writer *w)
{
	return w->bytes;
}

uint64_t dtrace__writer_ns(const struct dtrace_writer *w)
{
	return w->ns;
}

int dtrace__finish(struct dtrace_writer *w, const struct dtrace_cost *cost)
{
	int r;

	if ((r = rec_put_field_u64(w->pl, DE_INTERVALS, w->index)) != 0 ||
	    (r = rec_put_field_u64(w->pl, DE_PAGES, w->pages)) != 0 ||
	    (r = rec_put_field_u64(w->pl, DE_CPU_NS, cost->cpu_ns)) != 0 ||
	    (r = rec_put_field_u64(w->pl, DE_HARVEST_NS, cost->harvest_ns)) != 0 ||
	    (r = rec_put_field_u64(w->pl, DE_WRITE_NS, cost->write_ns ? cost->write_ns : w->ns)) ||
	    (r = rec_put_field_u64(w->pl, DE_BYTES, cost->bytes ? cost->bytes : w->bytes)) != 0) {
		buf_discard(w->pl);
		return r;
	}
	return dt_emit(w, REC_END);
}

void dtrace__writer_free(struct dtrace_writer *w)
{
	if (!w)
		return;
	buf_free(w->rec);
	buf_free(w->pl);
	buf_free(w->runs);
	free(w);
}

/* ---- the reader ---- */

struct dt_reader {
	struct dtrace *t;
	struct bitmap scratch;		/* a DI_BITMAP's words, made at the first one */
	uint64_t cap_iv, cap_runs;
	char *err;
	size_t errlen;
};

static int dt_fail(struct dt_reader *rd, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int dt_fail(struct dt_reader *rd, int r, const char *fmt, ...)
{
	va_list ap;

	if (rd->err && rd->errlen) {
		va_start(ap, fmt);
		vsnprintf(rd->err, rd->errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* A LEB128 u64 from [*p, end): 0, or KM_ERR_CORRUPT (cut, overlong or past 64 bits). */
static int dt_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;
	unsigned int i;

	for (i = 0; i < VARINT_MAX; i++) {
		if (*p >= end)
			return KM_ERR_CORRUPT;
		/* The tenth byte holds bit 63 only. */
		if (i == VARINT_MAX - 1 && (**p & 0xfe))
			return KM_ERR_CORRUPT;
		x |= (uint64_t)(**p & 0x7f) << (7 * i);
		if (!(*(*p)++ & 0x80)) {
			/* Canonical only: a trailing zero byte is padding, not a number. */
			if (i > 0 && (*p)[-1] == 0)
				return KM_ERR_CORRUPT;
			*v = x;
			return 0;
		}
	}
	return KM_ERR_CORRUPT;
}

static int dt_add_run(struct dt_reader *rd, uint64_t start, uint64_t len)
{
	struct dtrace *t = rd->t;
	struct dtrace_run *n;
	uint64_t cap;

	if (t->nr_runs == rd->cap_runs) {
		cap = rd->cap_runs ? rd->cap_runs * 2 : 1024;
		if (!(n = realloc(t->runs, cap * sizeof(*n))))
			return -ENOMEM;
		t->runs = n;
		rd->cap_runs = cap;
	}
	t->runs[t->nr_runs++] = (struct dtrace_run){ start, len };
	return 0;
}

/* DI_RUNS of interval iv: ascending, disjoint, not adjacent, inside the guest. */
static int dt_read_runs(struct dt_reader *rd, struct dtrace_interval *iv, const uint8_t *d,
			uint32_t len, uint64_t *pages)
{
	const uint8_t *p = d, *end = d + len;
	uint64_t nr = rd->t->info.guest_pages, prev = 0, gap, l;
	int r;

	*pages = 0;
	while (p < end) {
		if (dt_get_varint(&p, end, &gap) != 0 || dt_get_varint(&p, end, &l) != 0)
			return dt_fail(rd, KM_ERR_CORRUPT, "interval %llu: a run's number is cut "
				       "or malformed", (unsigned long long)iv->index);
		/* Bounded before adding: no sum below can wrap. */
		if ((iv->nr_runs && gap == 0) || gap > nr - prev || l >= nr - prev - gap)
			return dt_fail(rd, KM_ERR_CORRUPT, "interval %llu: a run at +%llu of %llu "
				       "pages overlaps the last or runs past the guest's %llu pages",
				       (unsigned long long)iv->index, (unsigned long long)gap,
				       (unsigned long long)(l + 1), (unsigned long long)nr);
		if ((r = dt_add_run(rd, prev + gap, l + 1)) != 0)
			return r;
		prev += gap + l + 1;
		*pages += l + 1;
		iv->nr_runs++;
	}
	return 0;
}

/* DI_BITMAP of interval iv: exactly the guest's bits, none past its last page. */
static int dt_read_bitmap(struct dt_reader *rd, struct dtrace_interval *iv, const uint8_t *d,
			  uint32_t len, uint64_t *pages)
{
	uint64_t nr = rd->t->info.guest_pages, i = 0, end;
	int r;

	*pages = 0;
	if (len != (nr + 7) / 8)
		return dt_fail(rd, KM_ERR_CORRUPT, "interval %llu: a bitmap of %u bytes for %llu "
			       "pages", (unsigned long long)iv->index, len, (unsigned long long)nr);
	if (nr % 8 && (d[len - 1] >> (nr % 8)))
		return dt_fail(rd, KM_ERR_CORRUPT, "interval %llu: bits past the guest's last page",
			       (unsigned long long)iv->index);
	/* Into words (x86's bitmap layout is the file's), scanned a word at a time. */
	if (!rd->scratch.words && bitmap_init(&rd->scratch, nr) != 0)
		return -ENOMEM;
	bitmap_clear_all(&rd->scratch);
	memcpy(rd->scratch.words, d, len);
	while ((i = dt_next(&rd->scratch, i, true)) < nr) {
		end = dt_next(&rd->scratch, i, false);
		if ((r = dt_add_run(rd, i, end - i)) != 0)
			return r;
		*pages += end - i;
		iv->nr_runs++;
		i = end;
	}
	return 0;
}

static int dt_read_info(struct dt_reader *rd, const uint8_t *p, uint32_t len)
{
	struct dtrace_info *in = &rd->t->info;
	uint64_t v[7] = { 0 };
	bool have[7] = { false };
	struct buf *f = buf_view(p, len);
	const uint8_t *d;
	uint32_t tag, flen;
	int r;

	if (!f)
		return len ? -ENOMEM : dt_fail(rd, KM_ERR_CORRUPT, "the trace's geometry is empty");
	while ((r = rec_get_field(f, &tag, &d, &flen)) == 0) {
		if (tag >= DT_VERSION && tag <= DT_START_NS) {
			if (rec_field_u64(d, flen, &v[tag]) != 0) {
				r = dt_fail(rd, KM_ERR_CORRUPT, "the trace's geometry: field %u is "
					    "not a u64", tag);
				goto out;
			}
			have[tag] = true;
		}
	}
	if (r != KM_ERR_END) {
		r = dt_fail(rd, KM_ERR_CORRUPT, "the trace's geometry: a field runs past its record");
		goto out;
	}
	if (!have[DT_VERSION] || !have[DT_PAGE_SIZE] || !have[DT_GUEST_PAGES] ||
	    !have[DT_INTERVAL_MS] || !have[DT_VCPUS]) {
		r = dt_fail(rd, KM_ERR_CORRUPT, "the trace's geometry lacks a required field");
		goto out;
	}
	if (v[DT_VERSION] != DTRACE_VERSION) {
		r = dt_fail(rd, KM_ERR_VERSION, "trace version %llu; this reader reads version %d",
			    (unsigned long long)v[DT_VERSION], DTRACE_VERSION);
		goto out;
	}
	in->version = DTRACE_VERSION;
	in->page_size = v[DT_PAGE_SIZE];
	in->guest_pages = v[DT_GUEST_PAGES];
	in->interval_ms = v[DT_INTERVAL_MS];
	in->vcpus = v[DT_VCPUS];
	in->start_wall_ns = v[DT_START_NS];
	if (dt_check_info(in) != 0)
		r = dt_fail(rd, KM_ERR_CORRUPT, "the trace's geometry is out of bounds (page size "
			    "%llu, %llu pages, interval %llu ms, %llu vCPUs)",
			    (unsigned long long)in->page_size, (unsigned long long)in->guest_pages,
			    (unsigned long long)in->interval_ms, (unsigned long long)in->vcpus);
	else
		r = 0;
out:
	buf_free(f);
	return r;
}

static int dt_read_interval(struct dt_reader *rd, const uint8_t *p, uint32_t len)
{
	struct dtrace *t = rd->t;
	struct dtrace_interval *iv, *n;
	const uint8_t *runs = NULL, *bm = NULL, *d;
	uint32_t runs_len = 0, bm_len = 0, tag, flen;
	uint64_t want = t->nr_iv, pages = 0, declared = 0, cap;
	bool have_idx = false, have_dur = false, have_pages = false;
	struct buf *f;
	int r;

	if (t->nr_iv == rd->cap_iv) {
		cap = rd->cap_iv ? rd->cap_iv * 2 : 256;
		if (!(n = realloc(t->iv, cap * sizeof(*n))))
			return -ENOMEM;
		t->iv = n;
		rd->cap_iv = cap;
	}
	iv = &t->iv[t->nr_iv];
	*iv = (struct dtrace_interval){ .index = want, .first_run = t->nr_runs };
	if (!(f = buf_view(p, len)))
		return len ? -ENOMEM : dt_fail(rd, KM_ERR_CORRUPT, "interval %llu is empty",
					       (unsigned long long)want);
	while ((r = rec_get_field(f, &tag, &d, &flen)) == 0) {
		r = 0;
		switch (tag) {
		case DI_INDEX:
			r = rec_field_u64(d, flen, &iv->index);
			have_idx = true;
			break;
		case DI_DURATION_NS:
			r = rec_field_u64(d, flen, &iv->duration_ns);
			have_dur = true;
			break;
		case DI_PROGRESS:
			r = rec_field_u64(d, flen, &iv->progress);
			iv->has_progress = true;
			break;
		case DI_PAGES:
			r = rec_field_u64(d, flen, &declared);
			have_pages = true;
			break;
		case DI_RUNS:
			runs = d;
			runs_len = flen;
			break;
		case DI_BITMAP:
			bm = d;
			bm_len = flen;
			break;
		default:	/* unknown fields are skipped (docs/format.md s.3) */
			break;
		}
		if (r != 0) {
			r = dt_fail(rd, KM_ERR_CORRUPT, "interval %llu: field %u is not a u64",
				    (unsigned long long)want, tag);
			goto out;
		}
	}
	if (r != KM_ERR_END) {
		r = dt_fail(rd, KM_ERR_CORRUPT, "interval %llu: a field runs past its record",
			    (unsigned long long)want);
		goto out;
	}
	if (!have_idx || !have_dur || !have_pages || iv->index != want) {
		r = dt_fail(rd, KM_ERR_CORRUPT, "interval %llu: %s", (unsigned long long)want,
			    iv->index != want ? "out of order" : "a required field is missing");
		goto out;
	}
	if (iv->duration_ns > DTRACE_MAX_DURATION_NS || (runs && bm)) {
		r = dt_fail(rd, KM_ERR_CORRUPT, "interval %llu: %s", (unsigned long long)want,
			    runs && bm ? "both runs and a bitmap" : "a duration out of bounds");
		goto out;
	}
	if (iv->has_progress && t->nr_iv && t->iv[t->nr_iv - 1].has_progress &&
	    iv->progress < t->iv[t->nr_iv - 1].progress) {
		/* The guest's counters only grow. */
		r = dt_fail(rd, KM_ERR_CORRUPT, "interval %llu: the progress counter went back",
			    (unsigned long long)want);
		goto out;
	}
	if ((runs && (r = dt_read_runs(rd, iv, runs, runs_len, &pages)) != 0) ||
	    (bm && (r = dt_read_bitmap(rd, iv, bm, bm_len, &pages)) != 0))
		goto out;
	if (pages != declared) {
		r = dt_fail(rd, KM_ERR_CORRUPT, "interval %llu says %llu pages but holds %llu",
			    (unsigned long long)want, (unsigned long long)declared,
			    (unsigned long long)pages);
		goto out;
	}
	iv->pages = pages;
	t->total_pages += pages;
	t->nr_iv++;
	r = 0;
out:
	buf_free(f);
	return r;
}

static int dt_read_end(struct dt_reader *rd, const uint8_t *p, uint32_t len)
{
	struct dtrace *t = rd->t;
	uint64_t intervals, pages;
	int r;

	if (rec_find_u64(p, len, DE_INTERVALS, &intervals) != 0 ||
	    rec_find_u64(p, len, DE_PAGES, &pages) != 0)
		return dt_fail(rd, KM_ERR_CORRUPT, "the trailer lacks its counts or is malformed");
	if (intervals != t->nr_iv || pages != t->total_pages)
		return dt_fail(rd, KM_ERR_CORRUPT, "the trailer counts %llu intervals and %llu "
			       "pages, the trace holds %llu and %llu",
			       (unsigned long long)intervals, (unsigned long long)pages,
			       (unsigned long long)t->nr_iv, (unsigned long long)t->total_pages);
	/* The costs are optional (0 when absent), but well-formed when present. */
	if (((r = rec_find_u64(p, len, DE_CPU_NS, &t->cost.cpu_ns)) && r != KM_ERR_END) ||
	    ((r = rec_find_u64(p, len, DE_HARVEST_NS, &t->cost.harvest_ns)) && r != KM_ERR_END) ||
	    ((r = rec_find_u64(p, len, DE_WRITE_NS, &t->cost.write_ns)) && r != KM_ERR_END) ||
	    ((r = rec_find_u64(p, len, DE_BYTES, &t->cost.bytes)) && r != KM_ERR_END))
		return dt_fail(rd, KM_ERR_CORRUPT, "the trailer's cost is malformed");
	return 0;
}

int dtrace__parse(const uint8_t *data, size_t len, struct dtrace **out, char *err,
		  size_t errlen)
{
	struct dt_reader rd = { .err = err, .errlen = errlen };
	enum stream_purpose purpose;
	uint64_t caps, nrec = 0;
	size_t off = 0;
	uint32_t type, plen;
	const uint8_t *p;
	bool ended = false;
	int r;

	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	if (!(rd.t = calloc(1, sizeof(*rd.t))))
		return -ENOMEM;
	rd.t->file_bytes = len;
	while (off < len) {
		if (ended) {
			r = dt_fail(&rd, KM_ERR_CORRUPT, "%zu bytes after the trailer", len - off);
			goto out;
		}
		r = rec_frame(data + off, len - off, REC_MAX_PAYLOAD, &type, &plen);
		if (nrec == 0 && r != KM_ERR_TRUNCATED && (r != 0 || rec_verify(data) != 0)) {
			/* Not even one good record: some other file. */
			r = dt_fail(&rd, KM_ERR_BAD_MAGIC, "not a kvm-migrate record file (or its "
				    "first record is damaged)");
			goto out;
		}
		if (r != 0) {
			r = dt_fail(&rd, r == KM_ERR_TOO_LARGE ? KM_ERR_CORRUPT : r,
				    "record %llu at byte %zu: %s", (unsigned long long)nrec, off,
				    r == KM_ERR_TRUNCATED ? "cut short (the trace ends early)" :
				    "its length is out of bounds");
			goto out;
		}
		if (rec_verify(data + off) != 0) {
			r = dt_fail(&rd, KM_ERR_CORRUPT, "record %llu at byte %zu: bad checksum",
				    (unsigned long long)nrec, off);
			goto out;
		}
		p = data + off + REC_HDR_SIZE;
		if (nrec == 0) {
			if (type != REC_HEADER ||
			    (r = stream_parse_header(p, plen, &purpose, &caps)) == KM_ERR_BAD_MAGIC) {
				r = dt_fail(&rd, KM_ERR_BAD_MAGIC, "not a kvm-migrate record file");
				goto out;
			}
			if (r != 0) {
				r = dt_fail(&rd, r, "the file's header: %s", km_strerror(r));
				goto out;
			}
			if (purpose != STREAM_DTRACE) {
				r = dt_fail(&rd, KM_ERR_BAD_MAGIC, "a record file, but not a dirty "
					    "trace (purpose %d)", (int)purpose);
				goto out;
			}
		} else if (nrec == 1) {
			if (type != REC_DTRACE_INFO) {
				r = dt_fail(&rd, KM_ERR_CORRUPT, "record 1 is type %u, not the trace's "
					    "geometry", type);
				goto out;
			}
			if ((r = dt_read_info(&rd, p, plen)) != 0)
				goto out;
		} else if (type == REC_DTRACE_INTERVAL) {
			if ((r = dt_read_interval(&rd, p, plen)) != 0)
				goto out;
		} else if (type == REC_END) {
			if ((r = dt_read_end(&rd, p, plen)) != 0)
				goto out;
			ended = true;
		} else {
			r = dt_fail(&rd, KM_ERR_CORRUPT, "record %llu at byte %zu: type %u does not "
				    "belong in a trace", (unsigned long long)nrec, off, type);
			goto out;
		}
		off += REC_HDR_SIZE + plen;
		nrec++;
	}
	if (!ended) {
		r = dt_fail(&rd, KM_ERR_TRUNCATED, "the trace ends after %llu records without its "
			    "trailer (cut short, or its recording did not finish)",
			    (unsigned long long)nrec);
		goto out;
	}
	bitmap_free(&rd.scratch);
	*out = rd.t;
	return 0;
out:
	bitmap_free(&rd.scratch);
	dtrace__free(rd.t);
	return r;
}

int dtrace__load(const char *path, struct dtrace **out, char *err, size_t errlen)
{
	uint8_t *data = NULL;
	struct stat st;
	size_t got = 0;
	ssize_t n;
	int fd, r;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0) {
		r = km_errno();
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > DTRACE_MAX_FILE) {
		r = S_ISREG(st.st_mode) ? KM_ERR_TOO_LARGE : KM_ERR_INVALID;
		snprintf(err, errlen, "%s: %s", path, S_ISREG(st.st_mode) ?
			 "larger than a trace may be" : "not a regular file");
		goto out;
	}
	if (!(data = malloc(st.st_size ? (size_t)st.st_size : 1))) {
		r = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, data + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if ((r = dtrace__parse(data, got, out, err, errlen)) != 0) {
		char tmp[256];

		snprintf(tmp, sizeof(tmp), "%s", err);
		snprintf(err, errlen, "%s: %s", path, tmp);
	}
out:
	free(data);
	if (fd >= 0)
		close(fd);
	return r;
}

void dtrace__free(struct dtrace *t)
{
	if (!t)
		return;
	free(t->iv);
	free(t->runs);
	free(t);
}

void dtrace__interval_set(const struct dtrace *t, uint64_t i, struct bitmap *b)
{
	const struct dtrace_interval *iv = &t->iv[i];
	uint64_t k;

	bitmap_clear_all(b);
	for (k = 0; k < iv->nr_runs; k++)
		bitmap_set_range(b, t->runs[iv->first_run + k].start,
				 t->runs[iv->first_run + k].len);
}
