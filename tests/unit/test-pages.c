/*
 * Unit tests of lib/pages.c (the REC_PAGES payload codec), of
 * stream_parse_header (the REC_HEADER payload) and of streams over files. Everything a reader is
 * handed here sits in a malloc'd block of exactly its size, so that ASan
 * or valgrind see any read past the end.
 */
#include "config.h"

#include <endian.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lz4.h>

#include "unit.h"
#include "pages.h"
#include "record.h"
#include "stream.h"
#include "chan.h"

#define PAGE		PAGE_SIZE_4K

/* Deterministic "random" bytes (xorshift64): LZ4 cannot shrink them. */
static void fill_random(uint8_t *p, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 32);
	}
}

/* Text that LZ4 compresses well, different per seed. */
static void fill_text(uint8_t *p, size_t len, unsigned int seed)
{
	size_t off = 0;
	unsigned int line = 0;
	char tmp[80];
	int n;

	while (off < len) {
		n = snprintf(tmp, sizeof(tmp), "page %u line %u: the quick brown fox jumps\n",
			     seed, line++);
		if ((size_t)n > len - off)
			n = (int)(len - off);
		memcpy(p + off, tmp, (size_t)n);
		off += (size_t)n;
	}
}

/* A malloc'd copy of exactly len bytes (at least one byte is allocated). */
static uint8_t *exact_copy(const uint8_t *p, size_t len)
{
	uint8_t *c = malloc(len > 0 ? len : 1);

	assert_non_null(c);
	if (len > 0)
		memcpy(c, p, len);
	return c;
}

static void assert_stats(const struct pages_stats *st, uint64_t pages, uint64_t zero,
			 uint64_t raw, uint64_t lz4, uint64_t bytes_in, uint64_t bytes_out)
{
	assert_int_equal(st->pages, pages);
	assert_int_equal(st->zero, zero);
	assert_int_equal(st->raw, raw);
	assert_int_equal(st->lz4, lz4);
	assert_int_equal(st->bytes_in, bytes_in);
	assert_int_equal(st->bytes_out, bytes_out);
}

/* Reads the one entry of payload and checks it expands back to page. */
static void assert_one_entry(struct buf *payload, uint64_t want_gpa, enum page_kind want_kind,
			     const uint8_t *page)
{
	uint8_t dst[PAGE];
	enum page_kind kind;
	const uint8_t *data;
	uint64_t gpa;
	uint32_t len;

	assert_ok(pages_get(payload, &gpa, &kind, &data, &len));
	assert_int_equal(gpa, want_gpa);
	assert_int_equal(kind, want_kind);
	memset(dst, 0xa5, sizeof(dst));
	assert_ok(pages_expand(kind, data, len, dst));
	assert_memory_equal(dst, page, PAGE);
	assert_err(pages_get(payload, &gpa, &kind, &data, &len), KM_ERR_END);
}

static void test_zero_page_round_trip(void **state)
{
	static const uint8_t zero[PAGE];
	struct pages_stats st = { 0 };
	struct buf *b = buf_new(1 << 20);
	enum page_kind kind;
	const uint8_t *data;
	uint64_t gpa, head;
	uint32_t len;

	assert_true(pages_is_zero(zero));
	assert_ok(pages_put(b, 0x7000, zero, true, &st));
	assert_ok(pages_put(b, 0x8000, zero, false, &st));
	assert_stats(&st, 2, 2, 0, 0, 0, 16);
	assert_int_equal(buf_len(b), 16);
	/* The wire form: the address with kind 0, nothing else. */
	memcpy(&head, buf_ptr(b), 8);
	assert_int_equal(le64toh(head), 0x7000 | PAGE_ZERO);

	assert_ok(pages_get(b, &gpa, &kind, &data, &len));
	assert_int_equal(gpa, 0x7000);
	assert_int_equal(kind, PAGE_ZERO);
	assert_null(data);
	assert_int_equal(len, 0);
	assert_one_entry(b, 0x8000, PAGE_ZERO, zero);
	buf_free(b);
}

static void test_raw_page_round_trip(void **state)
{
	struct pages_stats st = { 0 };
	struct buf *b = buf_new(1 << 20);
	uint8_t page[PAGE];

	fill_random(page, sizeof(page), 1);
	assert_false(pages_is_zero(page));
	/* Asked to compress, but random data does not shrink: it goes raw. */
	assert_ok(pages_put(b, 0x100000, page, true, &st));
	assert_stats(&st, 1, 0, 1, 0, PAGE, 8 + PAGE);
	assert_int_equal(buf_len(b), 8 + PAGE);
	assert_memory_equal(buf_ptr(b) + 8, page, PAGE);
	assert_one_entry(b, 0x100000, PAGE_RAW, page);

	/* A page that is zero but for its last byte is not a zero page. */
	memset(page, 0, sizeof(page));
	page[PAGE - 1] = 1;
	assert_false(pages_is_zero(page));
	assert_ok(pages_put(b, 0x2000, page, false, &st));
	assert_stats(&st, 2, 0, 2, 0, 2 * PAGE, 2 * (8 + PAGE));
	assert_one_entry(b, 0x2000, PAGE_RAW, page);
	buf_free(b);
}

static void test_lz4_page_round_trip(void **state)
{
	struct pages_stats st = { 0 };
	struct buf *b = buf_new(1 << 20);
	uint8_t page[PAGE];
	uint32_t clen;
	size_t size;

	fill_text(page, sizeof(page), 7);
	assert_ok(pages_put(b, 0xfffff000, page, true, &st));
	size = buf_len(b);
	assert_true(size > 12 && size < 8 + PAGE);
	memcpy(&clen, buf_ptr(b) + 8, 4);
	clen = le32toh(clen);
	assert_int_equal(size, 12 + (size_t)clen);
	assert_stats(&st, 1, 0, 0, 1, PAGE, size);
	assert_one_entry(b, 0xfffff000, PAGE_LZ4, page);

	/* The same page without compression is raw. */
	assert_ok(pages_put(b, 0x1000, page, false, &st));
	assert_stats(&st, 2, 0, 1, 1, 2 * PAGE, size + 8 + PAGE);
	assert_one_entry(b, 0x1000, PAGE_RAW, page);
	buf_free(b);
}

/*
 * A batch of every kind, as the sender builds it: zero, raw, lz4, zero,
 * lz4. Fills *pages (5 pages) and gives the payload and its entry ends.
 */
#define BATCH		5
static uint8_t *make_batch(uint8_t pages[BATCH][PAGE], size_t ends[BATCH], size_t *size,
			   struct pages_stats *st)
{
	struct buf *b = buf_new(BATCH * PAGES_ENTRY_MAX);
	uint8_t *out;
	unsigned int i;

	memset(pages, 0, BATCH * PAGE);
	fill_random(pages[1], PAGE, 2);
	fill_text(pages[2], PAGE, 3);
	fill_text(pages[4], PAGE, 4);
	for (i = 0; i < BATCH; i++) {
		assert_ok(pages_put(b, (uint64_t)(i + 1) << 12, pages[i], true, st));
		ends[i] = buf_len(b);
	}
	*size = buf_len(b);
	out = exact_copy(buf_ptr(b), *size);
	buf_free(b);
	return out;
}

static void test_batch_round_trip(void **state)
{
	static const enum page_kind kinds[BATCH] = {
		PAGE_ZERO, PAGE_RAW, PAGE_LZ4, PAGE_ZERO, PAGE_LZ4
	};
	uint8_t (*pages)[PAGE] = malloc(BATCH * PAGE), dst[PAGE];
	struct pages_stats st = { 0 };
	size_t ends[BATCH], size;
	enum page_kind kind;
	const uint8_t *data;
	uint64_t gpa;
	uint32_t len;
	struct buf *v;
	uint8_t *p;
	unsigned int i;

	assert_non_null(pages);
	p = make_batch(pages, ends, &size, &st);
	assert_stats(&st, 5, 2, 1, 2, 3 * PAGE, size);
	v = buf_view(p, size);
	for (i = 0; i < BATCH; i++) {
		assert_ok(pages_get(v, &gpa, &kind, &data, &len));
		assert_int_equal(gpa, (uint64_t)(i + 1) << 12);
		assert_int_equal(kind, kinds[i]);
		assert_int_equal(buf_len(v), size - ends[i]);
		assert_ok(pages_expand(kind, data, len, dst));
		assert_memory_equal(dst, pages[i], PAGE);
	}
	assert_err(pages_get(v, &gpa, &kind, &data, &len), KM_ERR_END);
	buf_free(v);
	free(p);
	free(pages);
}

/* No room for the largest entry: refused before anything is appended or counted. */
static void test_put_on_full_buffer(void **state)
{
	static const uint8_t zero[PAGE];
	struct pages_stats st = { 0 }, before;
	struct buf *b = buf_new(PAGES_ENTRY_MAX + 100);
	uint8_t page[PAGE];

	fill_random(page, sizeof(page), 5);
	assert_ok(pages_put(b, 0, page, true, &st));
	assert_int_equal(buf_len(b), 8 + PAGE);
	before = st;
	assert_err(pages_put(b, 0x1000, page, true, &st), KM_ERR_NO_SPACE);
	assert_err(pages_put(b, 0x1000, page, false, &st), KM_ERR_NO_SPACE);
	/* Even a zero page (8 bytes): the check is for the worst case. */
	assert_err(pages_put(b, 0x1000, zero, true, &st), KM_ERR_NO_SPACE);
	assert_int_equal(buf_len(b), 8 + PAGE);
	assert_memory_equal(&st, &before, sizeof(st));
	assert_one_entry(b, 0, PAGE_RAW, page);
	buf_free(b);

	/* A buffer that could never hold a page. */
	b = buf_new(PAGES_ENTRY_MAX - 1);
	memset(&st, 0, sizeof(st));
	assert_err(pages_put(b, 0, zero, false, &st), KM_ERR_NO_SPACE);
	assert_int_equal(buf_len(b), 0);
	assert_stats(&st, 0, 0, 0, 0, 0, 0);
	buf_free(b);
}

static void test_unaligned_gpa_refused(void **state)
{
	static const uint64_t bad[] = { 1, 0x1001, 0x1800, 0x1fff, 0xfffffffffffff001ULL };
	struct pages_stats st = { 0 };
	struct buf *b = buf_new(1 << 20);
	uint8_t page[PAGE];
	size_t i;

	fill_text(page, sizeof(page), 1);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_err(pages_put(b, bad[i], page, true, &st), KM_ERR_INVALID);
		assert_err(pages_put(b, bad[i], page, false, &st), KM_ERR_INVALID);
	}
	assert_int_equal(buf_len(b), 0);
	assert_stats(&st, 0, 0, 0, 0, 0, 0);
	buf_free(b);
}

/*
 * Every prefix of a valid batch: the entries wholly inside it parse, then
 * KM_ERR_END at an entry boundary, else KM_ERR_TRUNCATED with nothing of
 * the partial entry consumed.
 */
static void test_every_truncation(void **state)
{
	uint8_t (*pages)[PAGE] = malloc(BATCH * PAGE);
	struct pages_stats st = { 0 };
	size_t ends[BATCH], size, cut, start;
	enum page_kind kind;
	const uint8_t *data;
	uint64_t gpa;
	uint32_t len;
	unsigned int n, i;
	uint8_t *p, *c;
	struct buf *v;
	int r;

	assert_non_null(pages);
	p = make_batch(pages, ends, &size, &st);
	for (cut = 0; cut < size; cut++) {
		c = exact_copy(p, cut);
		v = buf_view(c, cut);
		assert_non_null(v);
		n = 0;
		while ((r = pages_get(v, &gpa, &kind, &data, &len)) == 0) {
			assert_true(n < BATCH && ends[n] <= cut);
			n++;
		}
		/* The entries wholly inside the prefix, and where the next starts. */
		for (i = 0, start = 0; i < BATCH && ends[i] <= cut; i++)
			start = ends[i];
		assert_int_equal(n, i);
		if (cut == start) {
			assert_err(r, KM_ERR_END);
		} else {
			if (r != KM_ERR_TRUNCATED)
				fail_msg("cut at %zu of %zu: got %d (%s)", cut, size, r,
					 km_strerror(r));
			assert_int_equal(buf_len(v), cut - start);
		}
		buf_free(v);
		free(c);
	}
	free(p);
	free(pages);
}

/* One hand-made entry: head, then optionally a u32 length, then len bytes of fill. */
static uint8_t *make_entry(uint64_t head, bool with_len, uint32_t clen, size_t fill,
			   size_t *size)
{
	uint8_t *p;
	uint64_t h = htole64(head);
	uint32_t l = htole32(clen);

	*size = 8 + (with_len ? 4 : 0) + fill;
	p = malloc(*size);
	assert_non_null(p);
	memcpy(p, &h, 8);
	if (with_len)
		memcpy(p + 8, &l, 4);
	memset(p + *size - fill, 0x5a, fill);
	return p;
}

static void assert_get_fails(const uint8_t *p, size_t size, int want)
{
	struct buf *v = buf_view(p, size);
	enum page_kind kind;
	const uint8_t *data;
	uint64_t gpa;
	uint32_t len;

	assert_non_null(v);
	assert_err(pages_get(v, &gpa, &kind, &data, &len), want);
	/* A refused entry is not consumed. */
	assert_int_equal(buf_len(v), size);
	buf_free(v);
}

static void test_unknown_kind_corrupt(void **state)
{
	static const uint64_t kinds[] = { PAGE_KIND_MAX, 4, 0x100, 0xfff };
	size_t i, size;
	uint8_t *p;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		p = make_entry(0x5000 | kinds[i], false, 0, PAGE, &size);
		assert_get_fails(p, size, KM_ERR_CORRUPT);
		free(p);
	}
	/* Kinds are values, not flags: RAW|LZ4 is no kind either. */
	p = make_entry(0x5000 | PAGE_RAW | PAGE_LZ4, true, 16, 16, &size);
	assert_get_fails(p, size, KM_ERR_CORRUPT);
	free(p);
}

static void test_lz4_length_out_of_range(void **state)
{
	static const uint32_t bad[] = { 0, PAGE, PAGE + 1, 0x7fffffffU, 0xffffffffU };
	size_t i, size;
	uint8_t *p;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* Refused on the length alone, whatever follows. */
		p = make_entry(0x3000 | PAGE_LZ4, true, bad[i], 0, &size);
		assert_get_fails(p, size, KM_ERR_CORRUPT);
		free(p);
		p = make_entry(0x3000 | PAGE_LZ4, true, bad[i], PAGE + 8, &size);
		assert_get_fails(p, size, KM_ERR_CORRUPT);
		free(p);
	}
	/* The largest legal length, one byte short of it. */
	p = make_entry(0x3000 | PAGE_LZ4, true, PAGE - 1, PAGE - 2, &size);
	assert_get_fails(p, size, KM_ERR_TRUNCATED);
	free(p);
	/* pages_expand checks the length on its own too. */
	assert_err(pages_expand(PAGE_LZ4, (const uint8_t *)"x", 0, (uint8_t[PAGE]){ 0 }),
		   KM_ERR_CORRUPT);
}

/* An LZ4 entry carrying block, as a malloc'd payload of exactly its size. */
static uint8_t *lz4_entry(const uint8_t *block, uint32_t clen, size_t *size)
{
	uint8_t *p = make_entry(0x9000 | PAGE_LZ4, true, clen, clen, size);

	memcpy(p + 12, block, clen);
	return p;
}

/* pages_get accepts the entry (its framing is fine); pages_expand refuses it. */
static void assert_expand_fails(const uint8_t *block, uint32_t clen)
{
	uint8_t dst[PAGE], *p;
	enum page_kind kind;
	const uint8_t *data;
	uint64_t gpa;
	uint32_t len;
	struct buf *v;
	size_t size;

	p = lz4_entry(block, clen, &size);
	v = buf_view(p, size);
	assert_ok(pages_get(v, &gpa, &kind, &data, &len));
	assert_int_equal(kind, PAGE_LZ4);
	assert_int_equal(len, clen);
	assert_err(pages_expand(kind, data, len, dst), KM_ERR_CORRUPT);
	buf_free(v);
	free(p);
}

static void test_lz4_bad_blocks(void **state)
{
	uint8_t src[3 * PAGE], block[PAGE], garbage[200];
	int clen;

	/* A valid block of half a page: short. */
	fill_text(src, sizeof(src), 9);
	clen = LZ4_compress_default((const char *)src, (char *)block, PAGE / 2, PAGE - 1);
	assert_true(clen > 0);
	assert_expand_fails(block, (uint32_t)clen);
	/* A page less one byte: still short. */
	clen = LZ4_compress_default((const char *)src, (char *)block, PAGE - 1, PAGE - 1);
	assert_true(clen > 0);
	assert_expand_fails(block, (uint32_t)clen);
	/* Three pages: would overflow the page, refused without writing past it. */
	clen = LZ4_compress_default((const char *)src, (char *)block, sizeof(src), PAGE - 1);
	assert_true(clen > 0);
	assert_expand_fails(block, (uint32_t)clen);
	/* Garbage. */
	memset(garbage, 0xff, sizeof(garbage));
	assert_expand_fails(garbage, sizeof(garbage));
	fill_random(garbage, sizeof(garbage), 11);
	assert_expand_fails(garbage, sizeof(garbage));
	/* A single zero byte is an empty block: zero bytes out. */
	garbage[0] = 0;
	assert_expand_fails(garbage, 1);
}

static void test_expand_checks_kind_and_raw_length(void **state)
{
	uint8_t page[PAGE], dst[PAGE];

	fill_random(page, sizeof(page), 3);
	assert_err(pages_expand(PAGE_RAW, page, PAGE - 1, dst), KM_ERR_CORRUPT);
	assert_err(pages_expand(PAGE_RAW, page, PAGE + 1, dst), KM_ERR_CORRUPT);
	assert_err(pages_expand(PAGE_KIND_MAX, page, PAGE, dst), KM_ERR_CORRUPT);
	assert_err(pages_expand((enum page_kind)0xfff, page, PAGE, dst), KM_ERR_CORRUPT);
}

/*
 * Every single-bit flip of a real compressed page: LZ4 has no checksum, so
 * a flip may decode to another page, but it never crashes or writes past
 * the page, and the result is 0 or KM_ERR_CORRUPT. Then the same over the
 * whole entry, framing included, through pages_get.
 */
static void test_lz4_bit_flips(void **state)
{
	struct pages_stats st = { 0 };
	struct buf *b = buf_new(PAGES_ENTRY_MAX);
	uint8_t page[PAGE], *dst, *entry, *c;
	enum page_kind kind;
	const uint8_t *data;
	size_t size, bit, refused = 0;
	uint64_t gpa;
	uint32_t len;
	struct buf *v;
	int r;

	/* dst is exactly a page on the heap: a write past it is caught. */
	dst = malloc(PAGE);
	assert_non_null(dst);
	fill_text(page, sizeof(page), 12);
	assert_ok(pages_put(b, 0x4000, page, true, &st));
	assert_int_equal(st.lz4, 1);
	size = buf_len(b);
	entry = exact_copy(buf_ptr(b), size);
	buf_free(b);

	for (bit = 12 * 8; bit < size * 8; bit++) {
		c = exact_copy(entry + 12, size - 12);
		c[bit / 8 - 12] ^= (uint8_t)(1u << (bit % 8));
		r = pages_expand(PAGE_LZ4, c, (uint32_t)(size - 12), dst);
		if (r != 0 && r != KM_ERR_CORRUPT)
			fail_msg("flip of bit %zu: got %d (%s)", bit, r, km_strerror(r));
		refused += r != 0;
		free(c);
	}
	/* Most flips land in the block's tokens and offsets. */
	assert_true(refused > 0);

	for (bit = 0; bit < size * 8; bit++) {
		c = exact_copy(entry, size);
		c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		v = buf_view(c, size);
		while ((r = pages_get(v, &gpa, &kind, &data, &len)) == 0) {
			assert_true((gpa & 0xfff) == 0);
			r = pages_expand(kind, data, len, dst);
			if (r != 0 && r != KM_ERR_CORRUPT)
				fail_msg("flip of bit %zu: expand got %d", bit, r);
		}
		if (r != KM_ERR_END && r != KM_ERR_CORRUPT && r != KM_ERR_TRUNCATED)
			fail_msg("flip of bit %zu: got %d (%s)", bit, r, km_strerror(r));
		buf_free(v);
		free(c);
	}
	free(entry);
	free(dst);
}

/* stream_parse_header: payloads built as stream_put_header builds them. */

struct hdr_spec {
	const char *magic;
	bool major, caps, purpose;
	uint64_t major_v, caps_v, purpose_v;
	bool extra;		/* an unknown field between the known ones */
};

static uint8_t *make_header(const struct hdr_spec *h, size_t *size)
{
	struct buf *p = buf_new(4096);
	uint8_t *out;

	assert_ok(buf_put(p, h->magic ? h->magic : REC_MAGIC, 8));
	if (h->major)
		assert_ok(rec_put_field_u64(p, HDR_VERSION_MAJOR, h->major_v));
	assert_ok(rec_put_field_u64(p, HDR_VERSION_MINOR, 7));
	if (h->extra)
		assert_ok(rec_put_field(p, 1000, "later", 5));
	if (h->caps)
		assert_ok(rec_put_field_u64(p, HDR_CAPS, h->caps_v));
	if (h->extra)
		assert_ok(rec_put_field(p, 0xffffffffU, NULL, 0));
	if (h->purpose)
		assert_ok(rec_put_field_u64(p, HDR_PURPOSE, h->purpose_v));
	*size = buf_len(p);
	out = exact_copy(buf_ptr(p), *size);
	buf_free(p);
	return out;
}

static int parse_header(const struct hdr_spec *h, enum stream_purpose *purpose,
			uint64_t *caps)
{
	size_t size;
	uint8_t *p = make_header(h, &size);
	int r = stream_parse_header(p, (uint32_t)size, purpose, caps);

	free(p);
	return r;
}

/* What stream_put_header(STREAM_MIGRATE, STREAM_CAP_LZ4) writes; tests change one thing. */
static struct hdr_spec good_header(void)
{
	return (struct hdr_spec){
		.major = true, .major_v = REC_VERSION, .caps = true,
		.caps_v = STREAM_CAP_LZ4, .purpose = true, .purpose_v = STREAM_MIGRATE,
	};
}

static void test_header_good(void **state)
{
	struct hdr_spec h = good_header();
	enum stream_purpose purpose;
	uint64_t caps;

	assert_ok(parse_header(&h, &purpose, &caps));
	assert_int_equal(purpose, STREAM_MIGRATE);
	assert_int_equal(caps, STREAM_CAP_LZ4);

	/* Caps are optional (none), every purpose is accepted. */
	h.caps = false;
	h.purpose_v = STREAM_SNAPSHOT;
	assert_ok(parse_header(&h, &purpose, &caps));
	assert_int_equal(purpose, STREAM_SNAPSHOT);
	assert_int_equal(caps, 0);
	h.purpose_v = STREAM_QUERY;
	assert_ok(parse_header(&h, &purpose, &caps));
	assert_int_equal(purpose, STREAM_QUERY);
}

static void test_header_unknown_field_skipped(void **state)
{
	struct hdr_spec h = good_header();
	enum stream_purpose purpose;
	uint64_t caps;

	h.extra = true;
	assert_ok(parse_header(&h, &purpose, &caps));
	assert_int_equal(purpose, STREAM_MIGRATE);
	assert_int_equal(caps, STREAM_CAP_LZ4);
}

static void test_header_bad_magic(void **state)
{
	struct hdr_spec h = good_header();
	enum stream_purpose purpose;
	uint64_t caps;
	uint8_t *p;

	h.magic = "KVMMIGR2";
	assert_err(parse_header(&h, &purpose, &caps), KM_ERR_BAD_MAGIC);
	h.magic = "kvmmigr1";
	assert_err(parse_header(&h, &purpose, &caps), KM_ERR_BAD_MAGIC);
	/* Shorter than the magic. */
	p = exact_copy((const uint8_t *)REC_MAGIC, 7);
	assert_err(stream_parse_header(p, 7, &purpose, &caps), KM_ERR_BAD_MAGIC);
	free(p);
	/* The magic alone has no version. */
	p = exact_copy((const uint8_t *)REC_MAGIC, 8);
	assert_err(stream_parse_header(p, 8, &purpose, &caps), KM_ERR_VERSION);
	free(p);
}

static void test_header_version(void **state)
{
	struct hdr_spec h = good_header();
	enum stream_purpose purpose;
	uint64_t caps;

	h.major_v = 2;
	assert_err(parse_header(&h, &purpose, &caps), KM_ERR_VERSION);
	h.major_v = 0;
	assert_err(parse_header(&h, &purpose, &caps), KM_ERR_VERSION);
	h.major_v = (1ULL << 32) | REC_VERSION;
	assert_err(parse_header(&h, &purpose, &caps), KM_ERR_VERSION);
	/* The major version is required. */
	h.major = false;
	assert_err(parse_header(&h, &purpose, &caps), KM_ERR_VERSION);
}

static void test_header_unknown_caps(void **state)
{
	struct hdr_spec h = good_header();
	enum stream_purpose purpose;
	uint64_t caps;
	uint8_t *p;
	size_t size;

	/* A file's reader cannot answer: unknown caps are refused. */
	h.caps_v = STREAM_CAP_LZ4 | (1ULL << 1);
	assert_err(parse_header(&h, &purpose, &caps), KM_ERR_UNSUPPORTED);
	h.caps_v = 1ULL << 63;
	assert_err(parse_header(&h, &purpose, &caps), KM_ERR_UNSUPPORTED);
	/* A live peer's offer: every bit comes back, for the reader to pick from. */
	h.caps_v = STREAM_CAP_LZ4 | (1ULL << 1) | (1ULL << 63);
	p = make_header(&h, &size);
	assert_int_equal(stream_parse_header_offer(p, (uint32_t)size, &purpose, &caps), 0);
	assert_true(caps == (STREAM_CAP_LZ4 | (1ULL << 1) | (1ULL << 63)));
	assert_int_equal(purpose, STREAM_MIGRATE);
	free(p);
	/* Everything else is checked as strictly. */
	h.major_v = REC_VERSION + 1;
	p = make_header(&h, &size);
	assert_err(stream_parse_header_offer(p, (uint32_t)size, &purpose, &caps), KM_ERR_VERSION);
	free(p);
}

/* A header payload with HDR_SKIPPABLE holding n types from types. */
static struct buf *skippable_header(const uint32_t *types, unsigned int n, uint32_t extra_bytes)
{
	struct buf *p = buf_new(4096), *list = buf_new(4096);
	unsigned int i;

	assert_ok(buf_put(p, REC_MAGIC, 8));
	assert_ok(rec_put_field_u64(p, HDR_VERSION_MAJOR, REC_VERSION));
	assert_ok(rec_put_field_u64(p, HDR_PURPOSE, STREAM_MIGRATE));
	for (i = 0; i < n; i++) {
		uint32_t le = htole32(types[i]);

		assert_ok(buf_put(list, &le, 4));
	}
	assert_ok(buf_put(list, "xx", extra_bytes));
	assert_ok(rec_put_field(p, HDR_SKIPPABLE, buf_ptr(list), (uint32_t)buf_len(list)));
	buf_free(list);
	return p;
}

/*
 * HDR_SKIPPABLE through a real stream (a socket pair): the reader skips
 * the listed types it does not know, never a type it knows, and a list
 * that is not whole u32s or too long is corrupt.
 */
static void test_header_skippable(void **state)
{
	uint32_t types[STREAM_SKIPPABLE_MAX + 1] = { 99, 1000, REC_PAGES };
	char err[CHAN_ERR_MAX];
	struct chan *w = NULL, *r = NULL;
	struct stream *sw, *sr;
	enum stream_purpose purpose;
	const uint8_t *pl;
	uint32_t type, len;
	struct buf *h;
	uint64_t caps;
	unsigned int i;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_ok(chan_accept_fd(sv[0], NULL, 1000, &w, err, sizeof(err)));
	assert_ok(chan_accept_fd(sv[1], NULL, 1000, &r, err, sizeof(err)));
	assert_non_null(sw = stream_new(w));
	assert_non_null(sr = stream_new(r));
	h = skippable_header(types, 3, 0);
	assert_ok(stream_put(sw, REC_HEADER, buf_ptr(h), (uint32_t)buf_len(h)));
	assert_ok(stream_put(sw, 99, "later", 5));
	assert_ok(stream_flush(sw));
	buf_free(h);
	assert_ok(stream_get_header_offer(sr, &purpose, &caps));
	assert_true(stream_skippable(sr, 99));
	assert_true(stream_skippable(sr, 1000));
	assert_false(stream_skippable(sr, 98));
	assert_false(stream_skippable(sr, REC_PAGES));	/* known: never skipped */
	assert_ok(stream_get(sr, 4096, &type, &pl, &len));
	assert_int_equal(type, 99);
	stream_free(sw);
	stream_free(sr);
	chan_close(w);
	chan_close(r);

	/* Not whole u32s, or more than a reader keeps: corrupt. */
	h = skippable_header(types, 1, 2);
	assert_err(stream_parse_header(buf_ptr(h), (uint32_t)buf_len(h), &purpose, &caps),
		   KM_ERR_CORRUPT);
	buf_free(h);
	for (i = 0; i <= STREAM_SKIPPABLE_MAX; i++)
		types[i] = 200 + i;
	h = skippable_header(types, STREAM_SKIPPABLE_MAX + 1, 0);
	assert_err(stream_parse_header(buf_ptr(h), (uint32_t)buf_len(h), &purpose, &caps),
		   KM_ERR_CORRUPT);
	buf_free(h);
	h = skippable_header(types, STREAM_SKIPPABLE_MAX, 0);
	assert_ok(stream_parse_header(buf_ptr(h), (uint32_t)buf_len(h), &purpose, &caps));
	buf_free(h);
}

static void test_header_purpose(void **state)
{
	struct hdr_spec h = good_header();
	enum stream_purpose purpose;
	uint64_t caps;

	h.purpose = false;
	assert_err(parse_header(&h, &purpose, &caps), KM_ERR_CORRUPT);
	h.purpose = true;
	h.purpose_v = 0;
	assert_err(parse_header(&h, &purpose, &caps), KM_ERR_CORRUPT);
	h.purpose_v = STREAM_PURPOSE_LAST + 1;
	assert_err(parse_header(&h, &purpose, &caps), KM_ERR_CORRUPT);
}

/* A u64 field of the wrong size, and every truncation of a good header. */
static void test_header_damage(void **state)
{
	struct hdr_spec h = good_header();
	enum stream_purpose purpose;
	struct buf *b = buf_new(256);
	uint64_t caps;
	size_t size, cut;
	uint8_t *p, *c;

	assert_ok(buf_put(b, REC_MAGIC, 8));
	assert_ok(rec_put_field(b, HDR_VERSION_MAJOR, "\1\0\0\0", 4));
	assert_ok(rec_put_field_u64(b, HDR_PURPOSE, STREAM_MIGRATE));
	p = exact_copy(buf_ptr(b), buf_len(b));
	assert_err(stream_parse_header(p, (uint32_t)buf_len(b), &purpose, &caps),
		   KM_ERR_CORRUPT);
	free(p);
	buf_free(b);

	/* The purpose comes last, so no proper prefix is a good header. */
	p = make_header(&h, &size);
	for (cut = 0; cut < size; cut++) {
		c = exact_copy(p, cut);
		if (stream_parse_header(c, (uint32_t)cut, &purpose, &caps) == 0)
			fail_msg("header cut at %zu of %zu was accepted", cut, size);
		free(c);
	}
	free(p);
}

/*
 * Streams over files (chan_file): a checkpoint file is written and read
 * as a migration stream is. Records come back as written, the end of the
 * file is KM_ERR_END between records and KM_ERR_TRUNCATED inside one, and
 * a full file system is the write's error.
 */
static void stream_file_write(const char *path, unsigned int n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	struct chan *c;
	struct stream *s;
	uint8_t payload[3000];
	unsigned int i;

	assert_true(fd >= 0);
	assert_int_equal(chan_file(fd, path, &c), 0);
	assert_non_null(s = stream_new(c));
	assert_int_equal(stream_put_header(s, STREAM_SNAPSHOT, STREAM_CAP_LZ4), 0);
	for (i = 0; i < n; i++) {
		fill_random(payload, sizeof(payload), i);
		assert_int_equal(stream_put(s, REC_PAGES, payload, 1000 + i), 0);
	}
	assert_int_equal(stream_flush(s), 0);
	stream_free(s);
	chan_close(c);
}

static struct stream *stream_file_open(const char *path, struct chan **c)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	enum stream_purpose purpose;
	struct stream *s;
	uint64_t caps;

	assert_true(fd >= 0);
	assert_int_equal(chan_file(fd, path, c), 0);
	assert_non_null(s = stream_new(*c));
	assert_int_equal(stream_get_header(s, &purpose, &caps), 0);
	assert_int_equal(purpose, STREAM_SNAPSHOT);
	assert_int_equal(caps, STREAM_CAP_LZ4);
	return s;
}

static void test_stream_over_file(void **state)
{
	char path[] = "/tmp/km-test-stream-XXXXXX";
	uint8_t want[3000];
	const uint8_t *p;
	uint32_t type, len;
	struct chan *c;
	struct stream *s;
	unsigned int i;
	struct stat st;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	stream_file_write(path, 600);	/* more than one output buffer */
	s = stream_file_open(path, &c);
	for (i = 0; i < 600; i++) {
		fill_random(want, sizeof(want), i);
		assert_int_equal(stream_get(s, REC_MAX_PAYLOAD, &type, &p, &len), 0);
		assert_int_equal(type, REC_PAGES);
		assert_int_equal(len, 1000 + i);
		assert_memory_equal(p, want, len);
	}
	assert_int_equal(stream_get(s, REC_MAX_PAYLOAD, &type, &p, &len), KM_ERR_END);
	stream_free(s);
	chan_close(c);

	/* Cut in the middle of the last record: truncated, not the end. */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size - 10), 0);
	s = stream_file_open(path, &c);
	for (i = 0; i < 599; i++)
		assert_int_equal(stream_get(s, REC_MAX_PAYLOAD, &type, &p, &len), 0);
	assert_int_equal(stream_get(s, REC_MAX_PAYLOAD, &type, &p, &len), KM_ERR_TRUNCATED);
	stream_free(s);
	chan_close(c);
	unlink(path);
}

static void test_stream_file_full(void **state)
{
	int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
	uint8_t payload[4096] = { 1 };
	struct chan *c;
	struct stream *s;
	unsigned int i;
	int r = 0;

	if (fd < 0)
		skip();
	assert_int_equal(chan_file(fd, "/dev/full", &c), 0);
	assert_non_null(s = stream_new(c));
	for (i = 0; i < 1000 && r == 0; i++)
		r = stream_put(s, REC_PAGES, payload, sizeof(payload));
	if (r == 0)
		r = stream_flush(s);
	assert_int_equal(r, -ENOSPC);
	stream_free(s);
	chan_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zero_page_round_trip),
		cmocka_unit_test(test_raw_page_round_trip),
		cmocka_unit_test(test_lz4_page_round_trip),
		cmocka_unit_test(test_batch_round_trip),
		cmocka_unit_test(test_put_on_full_buffer),
		cmocka_unit_test(test_unaligned_gpa_refused),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_unknown_kind_corrupt),
		cmocka_unit_test(test_lz4_length_out_of_range),
		cmocka_unit_test(test_lz4_bad_blocks),
		cmocka_unit_test(test_expand_checks_kind_and_raw_length),
		cmocka_unit_test(test_lz4_bit_flips),
		cmocka_unit_test(test_header_good),
		cmocka_unit_test(test_header_unknown_field_skipped),
		cmocka_unit_test(test_header_bad_magic),
		cmocka_unit_test(test_header_version),
		cmocka_unit_test(test_header_unknown_caps),
		cmocka_unit_test(test_header_skippable),
		cmocka_unit_test(test_header_purpose),
		cmocka_unit_test(test_header_damage),
		cmocka_unit_test(test_stream_over_file),
		cmocka_unit_test(test_stream_file_full),
	};

	/* Keep TAP lines (stdout) in order with failure messages (stderr). */
	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
