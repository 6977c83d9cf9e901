/* Unit tests for lib/record.c: framing, checksums, bounds, fields. */
#include "config.h"

#include <stdio.h>
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "unit.h"
#include "record.h"

static uint8_t *pattern(size_t len, unsigned int seed)
{
	uint8_t *p = malloc(len > 0 ? len : 1);
	size_t i;

	assert_non_null(p);
	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31 + seed * 7 + (i >> 8));
	return p;
}

/* One record of payload len, encoded into a fresh malloc'd array. */
static uint8_t *encode(uint32_t type, const uint8_t *payload, uint32_t len, size_t *size)
{
	struct buf *b = buf_new(REC_HDR_SIZE + (size_t)len);
	uint8_t *out;

	assert_ok(rec_put(b, type, payload, len));
	*size = buf_len(b);
	assert_int_equal(*size, REC_HDR_SIZE + (size_t)len);
	out = malloc(*size);
	assert_non_null(out);
	memcpy(out, buf_ptr(b), *size);
	buf_free(b);
	return out;
}

static void test_round_trip_back_to_back(void **state)
{
	static const uint32_t sizes[] = { 0, 1, 7, 8, 15, 16, 17, 4096, 100003 };
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	struct buf *s = buf_new(1 << 20);
	uint8_t *payloads[N];
	const uint8_t *p;
	uint32_t type, len;
	size_t i;

	for (i = 0; i < N; i++) {
		payloads[i] = pattern(sizes[i], (unsigned int)i);
		assert_ok(rec_put(s, REC_HEADER + (uint32_t)(i % (REC_TYPE_MAX - 1)),
				  payloads[i], sizes[i]));
	}
	for (i = 0; i < N; i++) {
		assert_ok(rec_get(s, REC_MAX_PAYLOAD, &type, &p, &len));
		assert_int_equal(type, REC_HEADER + (uint32_t)(i % (REC_TYPE_MAX - 1)));
		assert_int_equal(len, sizes[i]);
		if (len > 0)
			assert_memory_equal(p, payloads[i], len);
		free(payloads[i]);
	}
	assert_int_equal(buf_len(s), 0);
	assert_err(rec_get(s, REC_MAX_PAYLOAD, &type, &p, &len), KM_ERR_TRUNCATED);
	buf_free(s);
}

/*
 * The layout docs/format.md promises: little-endian type and length, then
 * XXH3-64 (seed 0) of the 8 header bytes followed by the payload.
 */
static void test_layout_and_checksum_definition(void **state)
{
	static const uint8_t payload[] = "checksummed payload";
	uint8_t *rec, *cat;
	uint64_t sum;
	uint32_t v;
	size_t size;

	rec = encode(REC_VM_CONFIG, payload, sizeof(payload), &size);
	memcpy(&v, rec, 4);
	assert_int_equal(le32toh(v), REC_VM_CONFIG);
	memcpy(&v, rec + 4, 4);
	assert_int_equal(le32toh(v), sizeof(payload));
	assert_memory_equal(rec + REC_HDR_SIZE, payload, sizeof(payload));

	cat = malloc(8 + sizeof(payload));
	assert_non_null(cat);
	memcpy(cat, rec, 8);
	memcpy(cat + 8, payload, sizeof(payload));
	memcpy(&sum, rec + 8, 8);
	assert_int_equal(le64toh(sum), XXH3_64bits(cat, 8 + sizeof(payload)));
	free(cat);
	free(rec);
}

/* The worked examples printed in docs/format.md, byte for byte. */
static void test_known_vectors(void **state)
{
	static const uint8_t end[] = {
		0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0xaf, 0x96, 0xb5, 0xd6, 0x58, 0x1e, 0x67, 0x81,
	};
	static const uint8_t hdr[] = {
		0x01, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00,
		0xcb, 0x6f, 0x17, 0xe3, 0x9e, 0xf9, 0xe9, 0x78,
		'K', 'V', 'M', 'M', 'I', 'G', 'R', '1',
		0x01, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
		0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x02, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	struct buf *b = buf_new(256), *pl = buf_new(256);

	assert_ok(rec_put(b, REC_END, NULL, 0));
	assert_int_equal(buf_len(b), sizeof(end));
	assert_memory_equal(buf_ptr(b), end, sizeof(end));
	buf_reset(b);

	assert_ok(buf_put(pl, REC_MAGIC, 8));
	assert_ok(rec_put_field_u64(pl, 1, REC_VERSION));
	assert_ok(rec_put_field_u64(pl, 2, 0));
	assert_ok(rec_put(b, REC_HEADER, buf_ptr(pl), (uint32_t)buf_len(pl)));
	assert_int_equal(buf_len(b), sizeof(hdr));
	assert_memory_equal(buf_ptr(b), hdr, sizeof(hdr));
	buf_free(pl);
	buf_free(b);
}

/* Every proper prefix of a record is "not yet", and consumes nothing. */
static void test_every_truncation_point(void **state)
{
	uint8_t *payload = pattern(300, 1), *rec;
	const uint8_t *p;
	uint32_t type, len;
	struct buf *v;
	size_t size, k;

	rec = encode(REC_PAGES, payload, 300, &size);
	for (k = 0; k < size; k++) {
		v = buf_view(rec, k);
		assert_non_null(v);
		assert_err(rec_get(v, REC_MAX_PAYLOAD, &type, &p, &len), KM_ERR_TRUNCATED);
		if (buf_len(v) != k)
			fail_msg("prefix of %zu bytes: %zu left after a failed read", k, buf_len(v));
		buf_free(v);
	}
	v = buf_view(rec, size);
	assert_ok(rec_get(v, REC_MAX_PAYLOAD, &type, &p, &len));
	assert_int_equal(len, 300);
	buf_free(v);
	free(rec);
	free(payload);
}

/*
 * Every single-bit flip is caught. The record is followed by as many bytes
 * as the largest legal payload, so a flip that grows the length finds a
 * "payload" to check instead of waiting for more (TRUNCATED): that is what
 * a stream reader sees once the next records have arrived.
 */
static void test_every_bit_flip_is_detected(void **state)
{
	const uint32_t plen = 61;
	uint8_t *payload = pattern(plen, 2), *rec, *area;
	const uint8_t *p;
	uint32_t type, len;
	size_t size, bit, byte;
	struct buf *v;
	int r;

	rec = encode(REC_VCPU_STATE, payload, plen, &size);
	area = calloc(1, size + REC_MAX_PAYLOAD);
	assert_non_null(area);
	memcpy(area, rec, size);
	for (bit = 0; bit < size * 8; bit++) {
		byte = bit / 8;
		area[byte] ^= (uint8_t)(1u << (bit % 8));
		v = buf_view(area, size + REC_MAX_PAYLOAD);
		r = rec_get(v, REC_MAX_PAYLOAD, &type, &p, &len);
		if (!(r == KM_ERR_CORRUPT || (r == KM_ERR_TOO_LARGE && byte >= 4 && byte < 8)))
			fail_msg("flip of bit %zu (byte %zu): got %d (%s)", bit, byte, r,
				 km_strerror(r));
		assert_int_equal(buf_len(v), size + REC_MAX_PAYLOAD);
		buf_free(v);
		area[byte] ^= (uint8_t)(1u << (bit % 8));
	}
	/* Flipped back, it is valid again: the loop really tested flips. */
	v = buf_view(area, size);
	assert_ok(rec_get(v, REC_MAX_PAYLOAD, &type, &p, &len));
	buf_free(v);
	free(area);
	free(rec);
	free(payload);
}

static void put_header(uint8_t hdr[REC_HDR_SIZE], uint32_t type, uint32_t len)
{
	uint32_t v;

	memset(hdr, 0, REC_HDR_SIZE);
	v = htole32(type);
	memcpy(hdr, &v, 4);
	v = htole32(len);
	memcpy(hdr + 4, &v, 4);
}

/* A length past the bound is refused from the header alone. */
static void test_oversized_refused_before_payload(void **state)
{
	static const uint32_t lens[] = { REC_MAX_PAYLOAD + 1, 0x80000000u, UINT32_MAX };
	uint8_t hdr[REC_HDR_SIZE], *rec, *payload = pattern(101, 3);
	const uint8_t *p;
	uint32_t type, len;
	struct buf *v;
	size_t i, size;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		put_header(hdr, REC_PAGES, lens[i]);
		v = buf_view(hdr, sizeof(hdr));
		assert_err(rec_get(v, REC_MAX_PAYLOAD, &type, &p, &len), KM_ERR_TOO_LARGE);
		/* A larger caller bound is clamped to the format's. */
		assert_err(rec_get(v, UINT32_MAX, &type, &p, &len), KM_ERR_TOO_LARGE);
		assert_int_equal(buf_len(v), sizeof(hdr));
		buf_free(v);
	}

	/* The caller's tighter bound applies too, exactly at the limit. */
	rec = encode(REC_PAGES, payload, 101, &size);
	v = buf_view(rec, REC_HDR_SIZE);
	assert_err(rec_get(v, 100, &type, &p, &len), KM_ERR_TOO_LARGE);
	assert_err(rec_get(v, 101, &type, &p, &len), KM_ERR_TRUNCATED);
	buf_free(v);
	v = buf_view(rec, size);
	assert_ok(rec_get(v, 101, &type, &p, &len));
	buf_free(v);

	/* The writer enforces the same bound; payload is not read. */
	v = buf_new(64);
	assert_err(rec_put(v, REC_PAGES, payload, REC_MAX_PAYLOAD + 1), KM_ERR_TOO_LARGE);
	assert_int_equal(buf_len(v), 0);
	buf_free(v);
	free(rec);
	free(payload);
}

static void test_largest_record_round_trips(void **state)
{
	uint8_t *payload = pattern(REC_MAX_PAYLOAD, 4);
	struct buf *b = buf_new(REC_HDR_SIZE + (size_t)REC_MAX_PAYLOAD);
	const uint8_t *p;
	uint32_t type, len;

	assert_ok(rec_put(b, REC_PAGES, payload, REC_MAX_PAYLOAD));
	assert_ok(rec_get(b, REC_MAX_PAYLOAD, &type, &p, &len));
	assert_int_equal(len, REC_MAX_PAYLOAD);
	assert_memory_equal(p, payload, REC_MAX_PAYLOAD);
	buf_free(b);
	free(payload);
}

/* A record that does not fit is not half-written. */
static void test_put_is_all_or_nothing(void **state)
{
	struct buf *b = buf_new(REC_HDR_SIZE + 10);

	assert_err(rec_put(b, REC_END, "0123456789a", 11), KM_ERR_NO_SPACE);
	assert_int_equal(buf_len(b), 0);
	assert_ok(rec_put(b, REC_END, "0123456789", 10));
	assert_err(rec_put(b, REC_END, NULL, 0), KM_ERR_NO_SPACE);
	assert_int_equal(buf_len(b), REC_HDR_SIZE + 10);
	buf_free(b);
}

static void test_fields_round_trip(void **state)
{
	struct buf *pl = buf_new(1024), *out = buf_new(2048), *in;
	const uint8_t *data, *p;
	uint32_t tag, len, type, plen;
	uint64_t v;

	assert_ok(rec_put_field(pl, 1, "abc", 3));
	assert_ok(rec_put_field_u64(pl, 2, 0x1122334455667788ULL));
	assert_ok(rec_put_field(pl, 3, NULL, 0));
	assert_ok(rec_put_field_u64(pl, UINT32_MAX, UINT64_MAX));
	assert_ok(rec_put(out, REC_VM_CONFIG, buf_ptr(pl), (uint32_t)buf_len(pl)));

	assert_ok(rec_get(out, REC_MAX_PAYLOAD, &type, &p, &plen));
	assert_int_equal(type, REC_VM_CONFIG);
	in = buf_view(p, plen);
	assert_ok(rec_get_field(in, &tag, &data, &len));
	assert_int_equal(tag, 1);
	assert_int_equal(len, 3);
	assert_memory_equal(data, "abc", 3);
	assert_ok(rec_get_field(in, &tag, &data, &len));
	assert_int_equal(tag, 2);
	assert_ok(rec_field_u64(data, len, &v));
	assert_int_equal(v, 0x1122334455667788ULL);
	assert_ok(rec_get_field(in, &tag, &data, &len));
	assert_int_equal(tag, 3);
	assert_int_equal(len, 0);
	assert_ok(rec_get_field(in, &tag, &data, &len));
	assert_int_equal(tag, UINT32_MAX);
	assert_ok(rec_field_u64(data, len, &v));
	assert_int_equal(v, UINT64_MAX);
	assert_err(rec_get_field(in, &tag, &data, &len), KM_ERR_END);
	assert_err(rec_get_field(in, &tag, &data, &len), KM_ERR_END);
	buf_free(in);
	buf_free(out);
	buf_free(pl);
}

/* The reading loop docs/format.md prescribes: unknown tags are skipped. */
static void test_unknown_fields_are_skippable(void **state)
{
	struct buf *pl = buf_new(256), *in;
	const uint8_t *data;
	uint32_t tag, len;
	uint64_t v, seen = 0;
	int r;

	assert_ok(rec_put_field(pl, 999, "from a later version", 20));
	assert_ok(rec_put_field_u64(pl, 1, 42));
	assert_ok(rec_put_field(pl, 1000, NULL, 0));
	in = buf_view(buf_ptr(pl), buf_len(pl));
	while ((r = rec_get_field(in, &tag, &data, &len)) == 0) {
		if (tag == 1)
			assert_ok(rec_field_u64(data, len, &seen));
	}
	assert_err(r, KM_ERR_END);
	assert_int_equal(seen, 42);
	assert_err(rec_field_u64((const uint8_t *)"1234567", 7, &v), KM_ERR_CORRUPT);
	assert_err(rec_field_u64((const uint8_t *)"123456789", 9, &v), KM_ERR_CORRUPT);
	buf_free(in);
	buf_free(pl);
}

/* A field may not run past the end of its payload, by any amount. */
static void test_field_past_end_is_refused(void **state)
{
	uint8_t raw[8 + 16];
	const uint8_t *data;
	uint32_t tag, len, v;
	struct buf *in;
	size_t k;

	memset(raw, 0xaa, sizeof(raw));
	v = htole32(7);
	memcpy(raw, &v, 4);
	v = htole32(16);
	memcpy(raw + 4, &v, 4);

	/* Every cut through the field, including inside its 8-byte head. */
	for (k = 1; k < sizeof(raw); k++) {
		in = buf_view(raw, k);
		assert_err(rec_get_field(in, &tag, &data, &len), KM_ERR_TRUNCATED);
		assert_int_equal(buf_len(in), k);
		buf_free(in);
	}
	/* A length that would wrap a 32-bit sum. */
	v = htole32(UINT32_MAX);
	memcpy(raw + 4, &v, 4);
	in = buf_view(raw, sizeof(raw));
	assert_err(rec_get_field(in, &tag, &data, &len), KM_ERR_TRUNCATED);
	assert_int_equal(buf_len(in), sizeof(raw));
	buf_free(in);
}

/* rec_find_u64: found (the last if repeated), absent, malformed. */
static void test_find_u64(void **state)
{
	struct buf *p = buf_new(1024);
	uint64_t v = 0;

	(void)state;
	assert_ok(rec_put_field_u64(p, 1, 11));
	assert_ok(rec_put_field(p, 2, "name", 4));
	assert_ok(rec_put_field_u64(p, 1, 12));
	assert_ok(rec_find_u64(buf_ptr(p), (uint32_t)buf_len(p), 1, &v));
	assert_int_equal(v, 12);
	assert_err(rec_find_u64(buf_ptr(p), (uint32_t)buf_len(p), 3, &v), KM_ERR_END);
	/* A field of tag 2 is not 8 bytes: asking for it as a u64 is corrupt. */
	assert_err(rec_find_u64(buf_ptr(p), (uint32_t)buf_len(p), 2, &v), KM_ERR_CORRUPT);
	/* A payload cut inside a field. */
	assert_err(rec_find_u64(buf_ptr(p), (uint32_t)buf_len(p) - 3, 1, &v), KM_ERR_CORRUPT);
	assert_err(rec_find_u64(NULL, 0, 1, &v), KM_ERR_END);
	buf_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_back_to_back),
		cmocka_unit_test(test_layout_and_checksum_definition),
		cmocka_unit_test(test_known_vectors),
		cmocka_unit_test(test_every_truncation_point),
		cmocka_unit_test(test_every_bit_flip_is_detected),
		cmocka_unit_test(test_oversized_refused_before_payload),
		cmocka_unit_test(test_largest_record_round_trips),
		cmocka_unit_test(test_put_is_all_or_nothing),
		cmocka_unit_test(test_fields_round_trip),
		cmocka_unit_test(test_unknown_fields_are_skippable),
		cmocka_unit_test(test_field_past_end_is_refused),
		cmocka_unit_test(test_find_u64),
	};

	/* Keep TAP lines (stdout) in order with failure messages (stderr). */
	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
