/* Unit tests for lib/buf.c: caps, invariants, integers, views. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "buf.h"

/* What every call must preserve, as far as the API can observe it. */
static void check_sizes(const struct buf *b, size_t max, size_t len)
{
	assert_int_equal(buf_len(b), len);
	assert_int_equal(buf_room(b), max - len);
}

static void test_new_is_empty(void **state)
{
	struct buf *b = buf_new(100);

	assert_non_null(b);
	check_sizes(b, 100, 0);
	assert_err(buf_consume(b, 1), KM_ERR_TRUNCATED);
	assert_ok(buf_consume(b, 0));
	buf_free(b);
}

static void test_cap_is_hard(void **state)
{
	uint8_t data[100], out[100];
	struct buf *b = buf_new(100);
	size_t i;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	assert_ok(buf_put(b, data, 60));
	assert_err(buf_put(b, data, 41), KM_ERR_NO_SPACE);
	check_sizes(b, 100, 60);		/* a refused put appends nothing */
	assert_ok(buf_put(b, data + 60, 40));
	check_sizes(b, 100, 100);
	assert_err(buf_put_u8(b, 0), KM_ERR_NO_SPACE);
	assert_ok(buf_put(b, data, 0));

	/* Consumed bytes no longer count against the cap. */
	assert_ok(buf_get(b, out, 30));
	check_sizes(b, 100, 70);
	assert_ok(buf_put(b, data, 30));
	check_sizes(b, 100, 100);
	assert_ok(buf_get(b, out, 70));
	assert_memory_equal(out, data + 30, 70);
	assert_ok(buf_get(b, out, 30));
	assert_memory_equal(out, data, 30);
	check_sizes(b, 100, 0);
	buf_free(b);
}

static void test_zero_cap(void **state)
{
	struct buf *b = buf_new(0);
	uint8_t *p;

	assert_err(buf_put_u8(b, 1), KM_ERR_NO_SPACE);
	assert_ok(buf_put(b, "", 0));
	assert_ok(buf_reserve(b, 0, &p));
	check_sizes(b, 0, 0);
	buf_free(b);
}

static void test_huge_lengths_do_not_wrap(void **state)
{
	struct buf *b = buf_new(64);
	uint8_t *p = (uint8_t *)1;
	const uint8_t *q = (const uint8_t *)1;

	assert_ok(buf_put_u32(b, 7));
	assert_err(buf_reserve(b, SIZE_MAX, &p), KM_ERR_NO_SPACE);
	assert_null(p);
	assert_err(buf_reserve(b, SIZE_MAX - 3, &p), KM_ERR_NO_SPACE);
	assert_err(buf_get_ptr(b, SIZE_MAX, &q), KM_ERR_TRUNCATED);
	assert_null(q);
	assert_err(buf_consume(b, SIZE_MAX), KM_ERR_TRUNCATED);
	check_sizes(b, 64, 4);
	buf_free(b);
}

/* Grows geometrically from nothing to the cap, one byte at a time. */
static void test_growth_to_cap(void **state)
{
	const size_t max = (1 << 20) + 3;
	struct buf *b = buf_new(max);
	const uint8_t *p;
	size_t i;

	for (i = 0; i < max; i++)
		assert_ok(buf_put_u8(b, (uint8_t)(i * 7)));
	check_sizes(b, max, max);
	assert_err(buf_put_u8(b, 0), KM_ERR_NO_SPACE);
	p = buf_ptr(b);
	for (i = 0; i < max; i++) {
		if (p[i] != (uint8_t)(i * 7))
			fail_msg("byte %zu is %u, want %u", i, p[i], (uint8_t)(i * 7));
	}
	buf_free(b);
}

/*
 * A random walk of appends and reads checked against a plain array: the
 * contents, length and room must match the model after every call.
 */
static void test_random_ops_match_model(void **state)
{
	enum { MAX = 3000, STEPS = 20000 };
	uint8_t model[MAX], tmp[MAX], *p;
	size_t mlen = 0, n, i;
	uint32_t seed = 12345;
	struct buf *b = buf_new(MAX);
	int step, r;

	for (step = 0; step < STEPS; step++) {
		seed = seed * 1103515245 + 12345;
		n = (seed >> 8) % 700;
		switch ((seed >> 24) % 4) {
		case 0:		/* put */
			for (i = 0; i < n; i++)
				tmp[i] = (uint8_t)(step + i);
			r = buf_put(b, tmp, n);
			if (mlen + n > MAX) {
				assert_err(r, KM_ERR_NO_SPACE);
			} else {
				assert_ok(r);
				memcpy(model + mlen, tmp, n);
				mlen += n;
			}
			break;
		case 1:		/* reserve and fill */
			r = buf_reserve(b, n, &p);
			if (mlen + n > MAX) {
				assert_err(r, KM_ERR_NO_SPACE);
			} else {
				assert_ok(r);
				for (i = 0; i < n; i++)
					p[i] = model[mlen + i] = (uint8_t)(step * 3 + i);
				mlen += n;
			}
			break;
		case 2:		/* get */
			r = buf_get(b, tmp, n);
			if (n > mlen) {
				assert_err(r, KM_ERR_TRUNCATED);
			} else {
				assert_ok(r);
				assert_memory_equal(tmp, model, n);
				memmove(model, model + n, mlen - n);
				mlen -= n;
			}
			break;
		case 3:		/* consume */
			r = buf_consume(b, n);
			if (n > mlen) {
				assert_err(r, KM_ERR_TRUNCATED);
			} else {
				assert_ok(r);
				memmove(model, model + n, mlen - n);
				mlen -= n;
			}
			break;
		}
		check_sizes(b, MAX, mlen);
		if (mlen > 0)
			assert_memory_equal(buf_ptr(b), model, mlen);
	}
	buf_free(b);
}

static void test_ints_round_trip(void **state)
{
	static const uint64_t v64[] = {
		0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff,
		0x80000000, 0xffffffff, 0x100000000ULL, 0x0123456789abcdefULL,
		0x8000000000000000ULL, UINT64_MAX,
	};
	struct buf *b = buf_new(4096);
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	size_t i;

	for (i = 0; i < sizeof(v64) / sizeof(v64[0]); i++) {
		assert_ok(buf_put_u8(b, (uint8_t)v64[i]));
		assert_ok(buf_put_u16(b, (uint16_t)v64[i]));
		assert_ok(buf_put_u32(b, (uint32_t)v64[i]));
		assert_ok(buf_put_u64(b, v64[i]));
	}
	check_sizes(b, 4096, 15 * sizeof(v64) / sizeof(v64[0]));
	for (i = 0; i < sizeof(v64) / sizeof(v64[0]); i++) {
		assert_ok(buf_get_u8(b, &u8));
		assert_int_equal(u8, (uint8_t)v64[i]);
		assert_ok(buf_get_u16(b, &u16));
		assert_int_equal(u16, (uint16_t)v64[i]);
		assert_ok(buf_get_u32(b, &u32));
		assert_int_equal(u32, (uint32_t)v64[i]);
		assert_ok(buf_get_u64(b, &u64));
		assert_int_equal(u64, v64[i]);
	}
	check_sizes(b, 4096, 0);
	buf_free(b);
}

/* The wire order is little-endian whatever the host. */
static void test_ints_are_little_endian(void **state)
{
	static const uint8_t want[] = {
		0xab,
		0x34, 0x12,
		0x78, 0x56, 0x34, 0x12,
		0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01,
	};
	struct buf *b = buf_new(64);

	assert_ok(buf_put_u8(b, 0xab));
	assert_ok(buf_put_u16(b, 0x1234));
	assert_ok(buf_put_u32(b, 0x12345678));
	assert_ok(buf_put_u64(b, 0x0123456789abcdefULL));
	assert_int_equal(buf_len(b), sizeof(want));
	assert_memory_equal(buf_ptr(b), want, sizeof(want));
	buf_free(b);
}

/* A short read fails without consuming, so the caller can wait for more. */
static void test_truncated_reads_consume_nothing(void **state)
{
	static const uint8_t three[] = { 1, 2, 3 };
	struct buf *b = buf_new(16);
	const uint8_t *p = three;
	uint8_t out[8] = { 0 };
	uint16_t u16 = 0xdead;
	uint32_t u32 = 0xdeadbeef;
	uint64_t u64 = 42;

	assert_ok(buf_put(b, three, sizeof(three)));
	assert_err(buf_get_u32(b, &u32), KM_ERR_TRUNCATED);
	assert_int_equal(u32, 0xdeadbeef);
	assert_err(buf_get_u64(b, &u64), KM_ERR_TRUNCATED);
	assert_int_equal(u64, 42);
	assert_err(buf_get(b, out, 4), KM_ERR_TRUNCATED);
	assert_err(buf_get_ptr(b, 4, &p), KM_ERR_TRUNCATED);
	assert_null(p);
	assert_err(buf_consume(b, 4), KM_ERR_TRUNCATED);
	check_sizes(b, 16, 3);
	assert_memory_equal(buf_ptr(b), three, 3);

	assert_ok(buf_get_u16(b, &u16));
	assert_int_equal(u16, 0x0201);
	assert_err(buf_get_u16(b, &u16), KM_ERR_TRUNCATED);
	assert_int_equal(u16, 0x0201);
	check_sizes(b, 16, 1);
	assert_ok(buf_get_ptr(b, 1, &p));
	assert_int_equal(*p, 3);
	assert_err(buf_get_u8(b, out), KM_ERR_TRUNCATED);
	buf_free(b);
}

static void test_view_is_read_only(void **state)
{
	static const uint8_t data[] = { 0x78, 0x56, 0x34, 0x12, 9, 8, 7 };
	uint8_t copy[sizeof(data)];
	struct buf *v = buf_view(data, sizeof(data));
	uint8_t *p = (uint8_t *)1;
	uint32_t u32;

	memcpy(copy, data, sizeof(data));
	assert_non_null(v);
	assert_int_equal(buf_len(v), sizeof(data));
	assert_int_equal(buf_room(v), 0);
	assert_ptr_equal(buf_ptr(v), data);	/* no copy */

	assert_err(buf_put(v, "x", 1), KM_ERR_STATE);
	assert_err(buf_put(v, "", 0), KM_ERR_STATE);
	assert_err(buf_put_u8(v, 1), KM_ERR_STATE);
	assert_err(buf_put_u16(v, 1), KM_ERR_STATE);
	assert_err(buf_put_u32(v, 1), KM_ERR_STATE);
	assert_err(buf_put_u64(v, 1), KM_ERR_STATE);
	assert_err(buf_reserve(v, 1, &p), KM_ERR_STATE);
	assert_null(p);

	/* Reads work and consume from the view, never from the memory. */
	assert_ok(buf_get_u32(v, &u32));
	assert_int_equal(u32, 0x12345678);
	assert_int_equal(buf_len(v), 3);
	assert_err(buf_get_u32(v, &u32), KM_ERR_TRUNCATED);
	assert_int_equal(buf_len(v), 3);
	buf_reset(v);
	assert_int_equal(buf_len(v), 0);
	assert_err(buf_put_u8(v, 1), KM_ERR_STATE);
	buf_free(v);
	assert_memory_equal(data, copy, sizeof(data));

	/* An empty view is valid; a NULL pointer with a length is not. */
	v = buf_view(NULL, 0);
	assert_non_null(v);
	assert_int_equal(buf_len(v), 0);
	buf_free(v);
	assert_null(buf_view(NULL, 1));
}

static void test_reserve_and_reset(void **state)
{
	struct buf *b = buf_new(32);
	uint8_t *p = NULL;

	assert_ok(buf_reserve(b, 5, &p));
	assert_non_null(p);
	memcpy(p, "hello", 5);
	check_sizes(b, 32, 5);
	assert_memory_equal(buf_ptr(b), "hello", 5);
	assert_err(buf_reserve(b, 28, &p), KM_ERR_NO_SPACE);
	assert_null(p);
	check_sizes(b, 32, 5);

	buf_reset(b);
	check_sizes(b, 32, 0);		/* the cap survives a reset */
	assert_ok(buf_reserve(b, 32, &p));
	check_sizes(b, 32, 32);
	buf_free(b);
}

static void test_null_is_refused(void **state)
{
	struct buf *b = buf_new(8);
	uint8_t u8;

	buf_free(NULL);
	buf_reset(NULL);
	assert_int_equal(buf_len(NULL), 0);
	assert_int_equal(buf_room(NULL), 0);
	assert_null(buf_ptr(NULL));
	assert_err(buf_put(NULL, "x", 1), KM_ERR_INVALID);
	assert_err(buf_get_u8(NULL, &u8), KM_ERR_INVALID);
	assert_err(buf_put(b, NULL, 1), KM_ERR_INVALID);
	assert_ok(buf_put_u8(b, 1));
	assert_err(buf_get_u32(b, NULL), KM_ERR_INVALID);
	check_sizes(b, 8, 1);
	buf_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_is_empty),
		cmocka_unit_test(test_cap_is_hard),
		cmocka_unit_test(test_zero_cap),
		cmocka_unit_test(test_huge_lengths_do_not_wrap),
		cmocka_unit_test(test_growth_to_cap),
		cmocka_unit_test(test_random_ops_match_model),
		cmocka_unit_test(test_ints_round_trip),
		cmocka_unit_test(test_ints_are_little_endian),
		cmocka_unit_test(test_truncated_reads_consume_nothing),
		cmocka_unit_test(test_view_is_read_only),
		cmocka_unit_test(test_reserve_and_reset),
		cmocka_unit_test(test_null_is_refused),
	};

	/* Keep TAP lines (stdout) in order with failure messages (stderr). */
	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
