/*
 * Unit tests of dirty traces (lib/dtrace.c): a trace written and read back
 * gives the same sets (runs and bitmap encodings both), and the reader is
 * fuzzed: every truncation, random byte flips, length fields changed, and
 * payload bytes changed under a recomputed checksum (so that the checks
 * past the checksum are reached) must be refused cleanly or, when a change
 * is harmless, read into a trace that still keeps the reader's promises.
 * KM_DTRACE_FUZZ=N runs N cases per kind (default 3000).
 */
#define _GNU_SOURCE
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "unit.h"
#include "bitmap.h"
#include "buf.h"
#include "dtrace.h"
#include "record.h"

#define NR_PAGES	5000	/* not a multiple of 8 nor 64: the bitmap's tail is checked */
#define NR_IV		12

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static unsigned int fuzz_cases(void)
{
	const char *s = getenv("KM_DTRACE_FUZZ");

	return s ? (unsigned int)strtoul(s, NULL, 10) : 3000;
}

/* Interval i's set: runs, a stride, scattered pages; interval 7 is every other page (bitmap). */
static void make_set(unsigned int i, struct bitmap *b)
{
	uint64_t k;

	bitmap_clear_all(b);
	if (i == 3)
		return;				/* an idle interval */
	if (i == 7) {
		for (k = 0; k < NR_PAGES; k += 2)
			bitmap_set(b, k);
		return;
	}
	bitmap_set_range(b, 100 * i, 50 + i);
	for (k = 0; k < 40; k++)
		bitmap_set(b, (k * 97 + i * 13) % NR_PAGES);
	bitmap_set(b, 0);
	bitmap_set(b, NR_PAGES - 1);		/* the last page: a run that ends at the edge */
}

/* A trace of NR_IV intervals into a memfd; its bytes in *data (malloc'd). */
static size_t make_trace(uint8_t **data)
{
	struct dtrace_info info = { .page_size = 4096, .guest_pages = NR_PAGES,
				    .interval_ms = 100, .vcpus = 2, .start_wall_ns = 1234 };
	struct dtrace_cost cost = { .cpu_ns = 777, .harvest_ns = 555 };
	struct dtrace_writer *w;
	struct bitmap b;
	uint64_t prog;
	unsigned int i;
	int fd = memfd_create("dtrace", MFD_CLOEXEC);
	off_t len;

	assert_true(fd >= 0);
	assert_ok(bitmap_init(&b, NR_PAGES));
	assert_ok(dtrace__writer_new(fd, &info, &w));
	for (i = 0; i < NR_IV; i++) {
		make_set(i, &b);
		prog = 1000 * i;
		/* The first intervals come from a guest that does not report yet. */
		assert_ok(dtrace__put_interval(w, 100000000ULL + i, i < 2 ? NULL : &prog, &b));
	}
	assert_ok(dtrace__finish(w, &cost));
	dtrace__writer_free(w);
	bitmap_free(&b);
	len = lseek(fd, 0, SEEK_END);
	assert_true(len > 0);
	assert_non_null(*data = malloc((size_t)len));
	assert_int_equal(pread(fd, *data, (size_t)len, 0), len);
	close(fd);
	return (size_t)len;
}

/* What every trace the reader accepts promises: runs in order, inside, summing up. */
static void check_promises(const struct dtrace *t)
{
	uint64_t i, k, sum = 0, pages, end;

	assert_true(t->info.guest_pages >= 1 && t->info.guest_pages <= DTRACE_MAX_PAGES);
	for (i = 0; i < t->nr_iv; i++) {
		const struct dtrace_interval *iv = &t->iv[i];

		assert_int_equal(iv->index, i);
		assert_true(iv->first_run + iv->nr_runs <= t->nr_runs);
		for (k = 0, pages = 0, end = 0; k < iv->nr_runs; k++) {
			const struct dtrace_run *r = &t->runs[iv->first_run + k];

			assert_true(r->len >= 1);
			assert_true(k == 0 || r->start > end);
			assert_true(r->start + r->len <= t->info.guest_pages);
			end = r->start + r->len;
			pages += r->len;
		}
		assert_int_equal(pages, iv->pages);
		sum += pages;
	}
	assert_int_equal(sum, t->total_pages);
}

static void test_round_trip(void **state)
{
	struct bitmap want, got;
	struct dtrace *t;
	uint8_t *data;
	size_t len = make_trace(&data);
	char err[256];
	unsigned int i;

	(void)state;
	assert_ok(dtrace__parse(data, len, &t, err, sizeof(err)));
	assert_int_equal(t->info.version, DTRACE_VERSION);
	assert_int_equal(t->info.page_size, 4096);
	assert_int_equal(t->info.guest_pages, NR_PAGES);
	assert_int_equal(t->info.interval_ms, 100);
	assert_int_equal(t->info.vcpus, 2);
	assert_int_equal(t->info.start_wall_ns, 1234);
	assert_int_equal(t->nr_iv, NR_IV);
	assert_int_equal(t->cost.cpu_ns, 777);
	assert_int_equal(t->cost.harvest_ns, 555);
	/* The writer counts its own bytes: everything before the trailer. */
	assert_true(t->cost.bytes > 0 && t->cost.bytes < len);
	check_promises(t);
	assert_ok(bitmap_init(&want, NR_PAGES));
	assert_ok(bitmap_init(&got, NR_PAGES));
	for (i = 0; i < NR_IV; i++) {
		make_set(i, &want);
		dtrace__interval_set(t, i, &got);
		if (memcmp(want.words, got.words, BITMAP_WORDS(NR_PAGES) * 8))
			fail_msg("interval %u: the set read back differs", i);
		assert_int_equal(t->iv[i].pages, bitmap_count(&want));
		assert_int_equal(t->iv[i].duration_ns, 100000000ULL + i);
		assert_int_equal(t->iv[i].has_progress, i >= 2);
		if (i >= 2)
			assert_int_equal(t->iv[i].progress, 1000 * i);
	}
	bitmap_free(&want);
	bitmap_free(&got);
	dtrace__free(t);
	free(data);
}

/* The writer refuses a geometry the reader would refuse. */
static void test_writer_bounds(void **state)
{
	struct dtrace_info info = { .page_size = 4096, .guest_pages = NR_PAGES,
				    .interval_ms = 100, .vcpus = 1 };
	struct dtrace_writer *w;

	(void)state;
	info.page_size = 4095;
	assert_err(dtrace__writer_new(-1, &info, &w), KM_ERR_INVALID);
	info.page_size = 4096;
	info.guest_pages = DTRACE_MAX_PAGES + 1;
	assert_err(dtrace__writer_new(-1, &info, &w), KM_ERR_INVALID);
	info.guest_pages = NR_PAGES;
	info.vcpus = 0;
	assert_err(dtrace__writer_new(-1, &info, &w), KM_ERR_INVALID);
}

static int parse_refused(const uint8_t *d, size_t len, char *err, size_t errlen)
{
	struct dtrace *t = NULL;
	int r = dtrace__parse(d, len, &t, err, errlen);

	if (r == 0) {
		check_promises(t);
		dtrace__free(t);
	} else {
		assert_null(t);
		if (r != KM_ERR_CORRUPT && r != KM_ERR_TRUNCATED && r != KM_ERR_VERSION &&
		    r != KM_ERR_BAD_MAGIC)
			fail_msg("refused with %d (%s): %s", r, km_strerror(r), err);
		if (!err[0])
			fail_msg("refused with %s but without a message", km_strerror(r));
	}
	return r;
}

/* Every prefix of a valid trace is refused as truncated. */
static void test_every_truncation(void **state)
{
	uint8_t *data, *cut;
	size_t len = make_trace(&data), n;
	char err[256];

	(void)state;
	for (n = 0; n < len; n++) {
		/* A copy of exactly n bytes: valgrind sees any read past them. */
		assert_non_null(cut = malloc(n ? n : 1));
		memcpy(cut, data, n);
		if (parse_refused(cut, n, err, sizeof(err)) != KM_ERR_TRUNCATED)
			fail_msg("a trace cut to %zu of %zu bytes: %s", n, len, err);
		free(cut);
	}
	free(data);
}

/* Random byte flips (1 to 4 bytes) anywhere: the checksums refuse them. */
static void test_random_flips(void **state)
{
	uint8_t *data, *copy;
	size_t len = make_trace(&data);
	unsigned int i, k, n = fuzz_cases();
	char err[256];

	(void)state;
	assert_non_null(copy = malloc(len));
	for (i = 0; i < n; i++) {
		memcpy(copy, data, len);
		for (k = 0; k <= rnd() % 4; k++)
			copy[rnd() % len] ^= (uint8_t)(1 + rnd() % 255);
		if (memcmp(copy, data, len) && parse_refused(copy, len, err, sizeof(err)) == 0)
			fail_msg("case %u: a damaged trace was read", i);
	}
	free(copy);
	free(data);
}

/* The records of a trace: offsets of each. */
static unsigned int record_offsets(const uint8_t *d, size_t len, size_t *offs, unsigned int max)
{
	uint32_t type, plen;
	size_t off = 0;
	unsigned int n = 0;

	while (off < len && n < max) {
		assert_ok(rec_frame(d + off, len - off, REC_MAX_PAYLOAD, &type, &plen));
		offs[n++] = off;
		off += REC_HDR_SIZE + plen;
	}
	return n;
}

/* A record's or a field's length set to something else: refused, never read past. */
static void test_length_fields(void **state)
{
	uint8_t *data, *copy;
	size_t len = make_trace(&data), offs[64];
	unsigned int nrec = record_offsets(data, len, offs, 64), i, n = fuzz_cases();
	uint32_t v, choices[] = { 0, 1, 7, 8, 15, 16, 0xffffffffU, REC_MAX_PAYLOAD,
				   REC_MAX_PAYLOAD + 1 };
	char err[256];

	(void)state;
	assert_non_null(copy = malloc(len));
	for (i = 0; i < n; i++) {
		size_t at = offs[rnd() % nrec] + 4;

		memcpy(copy, data, len);
		v = rnd() % 2 ? choices[rnd() % (sizeof(choices) / sizeof(choices[0]))] :
				(uint32_t)rnd();
		memcpy(copy + at, &v, 4);
		if (memcmp(copy, data, len) && parse_refused(copy, len, err, sizeof(err)) == 0)
			fail_msg("case %u: a trace with a record length changed was read", i);
	}
	free(copy);
	free(data);
}

/*
 * Payload bytes changed and the record re-framed with a good checksum:
 * what is left to catch it is the reader's own checks (field lengths,
 * runs, counts, order). A change may be harmless (a duration, a progress
 * value): then the trace read must still keep its promises.
 */
static void test_reframed_mutations(void **state)
{
	uint8_t *data;
	size_t len = make_trace(&data), offs[64];
	unsigned int nrec = record_offsets(data, len, offs, 64), i, k, n = fuzz_cases(), refused = 0;
	struct buf *out = buf_new(1 << 20);
	uint8_t pl[65536];
	uint32_t type, plen, f;
	char err[256];

	(void)state;
	assert_non_null(out);
	for (i = 0; i < n; i++) {
		unsigned int victim = 1 + (unsigned int)(rnd() % (nrec - 1));

		buf_reset(out);
		for (k = 0; k < nrec; k++) {
			assert_ok(rec_frame(data + offs[k], len - offs[k], REC_MAX_PAYLOAD, &type,
					    &plen));
			assert_true(plen <= sizeof(pl));
			memcpy(pl, data + offs[k] + REC_HDR_SIZE, plen);
			if (k == victim && plen) {
				switch (rnd() % 3) {
				case 0:	/* a byte */
					pl[rnd() % plen] ^= (uint8_t)(1 + rnd() % 255);
					break;
				case 1:	/* four bytes, often a field's tag or length */
					if (plen >= 4) {
						f = rnd() % 2 ? (uint32_t)rnd() % 64 :
								(uint32_t)rnd();
						memcpy(pl + rnd() % (plen - 3), &f, 4);
					}
					break;
				default:	/* cut the payload short */
					plen = (uint32_t)(rnd() % plen);
					break;
				}
			}
			assert_ok(rec_put(out, type, pl, plen));
		}
		if (parse_refused(buf_ptr(out), buf_len(out), err, sizeof(err)) != 0)
			refused++;
	}
	/* Most changes are caught; the rest were read and kept the promises above. */
	assert_true(refused > n / 2);
	buf_free(out);
	free(data);
}

/* A later version, another file kind, trailing bytes: each its own error. */
static void test_refusals(void **state)
{
	uint8_t *data;
	size_t len = make_trace(&data), offs[64];
	unsigned int nrec = record_offsets(data, len, offs, 64);
	struct buf *out = buf_new(1 << 20), *pl = buf_new(4096);
	struct dtrace *t;
	uint32_t type, plen;
	char err[256];
	unsigned int k;

	(void)state;
	assert_non_null(out);
	assert_non_null(pl);
	/* Version 2 of the trace: KM_ERR_VERSION, and the message says so. */
	for (k = 0; k < nrec; k++) {
		assert_ok(rec_frame(data + offs[k], len - offs[k], REC_MAX_PAYLOAD, &type, &plen));
		if (k == 1) {
			buf_reset(pl);
			assert_ok(rec_put_field_u64(pl, DT_VERSION, 2));
			assert_ok(buf_put(pl, data + offs[k] + REC_HDR_SIZE + 16, plen - 16));
			assert_ok(rec_put(out, type, buf_ptr(pl), (uint32_t)buf_len(pl)));
		} else {
			assert_ok(rec_put(out, type, data + offs[k] + REC_HDR_SIZE, plen));
		}
	}
	assert_err(dtrace__parse(buf_ptr(out), buf_len(out), &t, err, sizeof(err)),
		   KM_ERR_VERSION);
	assert_non_null(strstr(err, "version 2"));
	/* Bytes after the trailer. */
	buf_reset(out);
	assert_ok(buf_put(out, data, len));
	assert_ok(buf_put(out, "x", 1));
	assert_err(dtrace__parse(buf_ptr(out), buf_len(out), &t, err, sizeof(err)),
		   KM_ERR_CORRUPT);
	/* Not a record file at all. */
	assert_err(dtrace__parse((const uint8_t *)"hello, this is not a trace at all",
				 33, &t, err, sizeof(err)), KM_ERR_BAD_MAGIC);
	buf_free(out);
	buf_free(pl);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_writer_bounds),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_random_flips),
		cmocka_unit_test(test_length_fields),
		cmocka_unit_test(test_reframed_mutations),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
