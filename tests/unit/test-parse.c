/* Unit tests for lib/parse.c: sizes and bounded integers, table-driven. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "unit.h"
#include "parse.h"

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define TiB (1ULL << 40)

struct size_case {
	const char *in;
	int ok;
	uint64_t want;
};

static const struct size_case size_cases[] = {
	/* plain numbers */
	{ "0", 1, 0 },
	{ "1", 1, 1 },
	{ "4096", 1, 4096 },
	{ "007", 1, 7 },
	{ "4096B", 1, 4096 },
	{ "18446744073709551615", 1, UINT64_MAX },
	/* suffixes, binary multiples, with optional B / iB */
	{ "64K", 1, 64 * KiB },
	{ "64k", 1, 64 * KiB },
	{ "64KB", 1, 64 * KiB },
	{ "64KiB", 1, 64 * KiB },
	{ "256M", 1, 256 * MiB },
	{ "256MiB", 1, 256 * MiB },
	{ "8G", 1, 8 * GiB },
	{ "8g", 1, 8 * GiB },
	{ "8GB", 1, 8 * GiB },
	{ "1T", 1, TiB },
	{ "1TiB", 1, TiB },
	{ "0K", 1, 0 },
	{ "16777215T", 1, 16777215ULL * TiB },
	{ "17179869183G", 1, 17179869183ULL * GiB },
	/* overflow */
	{ "18446744073709551616", 0, 0 },
	{ "99999999999999999999999", 0, 0 },
	{ "16777216T", 0, 0 },
	{ "17179869184G", 0, 0 },
	{ "18014398509481984K", 0, 0 },
	/* garbage */
	{ "", 0, 0 },
	{ "K", 0, 0 },
	{ "B", 0, 0 },
	{ "-1", 0, 0 },
	{ "-0", 0, 0 },
	{ "+1", 0, 0 },
	{ " 1", 0, 0 },
	{ "1 ", 0, 0 },
	{ "1 K", 0, 0 },
	{ "1.5G", 0, 0 },
	{ "0x10", 0, 0 },
	{ "1KK", 0, 0 },
	{ "1Ki", 0, 0 },
	{ "1iB", 0, 0 },
	{ "1Kb", 0, 0 },
	{ "1KiBx", 0, 0 },
	{ "1BB", 0, 0 },
	{ "1P", 0, 0 },
	{ "12abc", 0, 0 },
	{ "1\n", 0, 0 },
};

static void test_parse_size_table(void **state)
{
	const struct size_case *c;
	uint64_t out;
	size_t i;
	int r;

	for (i = 0; i < sizeof(size_cases) / sizeof(size_cases[0]); i++) {
		c = &size_cases[i];
		out = 0x5a5a5a5a;
		r = parse_size(c->in, &out);
		if (c->ok && (r != 0 || out != c->want))
			fail_msg("parse_size(\"%s\"): got %d (%s) value %llu, want %llu",
				 c->in, r, km_strerror(r), (unsigned long long)out,
				 (unsigned long long)c->want);
		if (!c->ok && (r != KM_ERR_INVALID || out != 0x5a5a5a5a))
			fail_msg("parse_size(\"%s\"): got %d (%s) value %llu, want KM_ERR_INVALID and no value",
				 c->in, r, km_strerror(r), (unsigned long long)out);
	}
	assert_err(parse_size(NULL, &out), KM_ERR_INVALID);
}

struct u64_case {
	const char *in;
	uint64_t min, max;
	int ok;
	uint64_t want;
};

static const struct u64_case u64_cases[] = {
	{ "0", 0, 10, 1, 0 },
	{ "10", 0, 10, 1, 10 },
	{ "010", 0, 10, 1, 10 },
	{ "11", 0, 10, 0, 0 },
	{ "5", 6, 10, 0, 0 },
	{ "6", 6, 6, 1, 6 },
	{ "18446744073709551615", 0, UINT64_MAX, 1, UINT64_MAX },
	{ "18446744073709551616", 0, UINT64_MAX, 0, 0 },
	{ "", 0, UINT64_MAX, 0, 0 },
	{ "-1", 0, UINT64_MAX, 0, 0 },
	{ "+1", 0, UINT64_MAX, 0, 0 },
	{ " 1", 0, UINT64_MAX, 0, 0 },
	{ "1 ", 0, UINT64_MAX, 0, 0 },
	{ "1k", 0, UINT64_MAX, 0, 0 },
	{ "0x1", 0, UINT64_MAX, 0, 0 },
	{ "1e3", 0, UINT64_MAX, 0, 0 },
};

static void test_parse_u64_table(void **state)
{
	const struct u64_case *c;
	uint64_t out;
	size_t i;
	int r;

	for (i = 0; i < sizeof(u64_cases) / sizeof(u64_cases[0]); i++) {
		c = &u64_cases[i];
		out = 0x5a5a5a5a;
		r = parse_u64(c->in, c->min, c->max, &out);
		if (c->ok && (r != 0 || out != c->want))
			fail_msg("parse_u64(\"%s\", %llu, %llu): got %d (%s) value %llu, want %llu",
				 c->in, (unsigned long long)c->min,
				 (unsigned long long)c->max, r, km_strerror(r),
				 (unsigned long long)out, (unsigned long long)c->want);
		if (!c->ok && (r != KM_ERR_INVALID || out != 0x5a5a5a5a))
			fail_msg("parse_u64(\"%s\", %llu, %llu): got %d (%s), want KM_ERR_INVALID and no value",
				 c->in, (unsigned long long)c->min,
				 (unsigned long long)c->max, r, km_strerror(r));
	}
	assert_err(parse_u64(NULL, 0, 1, &out), KM_ERR_INVALID);
}

/* Not parse.c, but the strings every error message ends up printing. */
static void test_strerror(void **state)
{
	int e;

	assert_string_equal(km_strerror(0), "success");
	for (e = KM_ERR_BASE; e < KM_ERR_LAST; e++) {
		assert_non_null(km_strerror(e));
		assert_true(strcmp(km_strerror(e), "unknown kvm-migrate error") != 0);
	}
	assert_string_equal(km_strerror(KM_ERR_TRUNCATED), "input truncated");
	assert_string_equal(km_strerror(-2), "No such file or directory");
	assert_non_null(km_strerror(-4000));
	assert_non_null(km_strerror(KM_ERR_LAST));
	assert_non_null(km_strerror(5));
	assert_non_null(km_strerror(-100000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size_table),
		cmocka_unit_test(test_parse_u64_table),
		cmocka_unit_test(test_strerror),
	};

	/* Keep TAP lines (stdout) in order with failure messages (stderr). */
	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
