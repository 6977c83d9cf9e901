/*
 * Host tests of the guests' pure logic: the same .c files the images are
 * built from (args, fmt, gmem, pace, pick, prng, vpage, zipf), compiled
 * hosted. Distribution checks use fixed seeds, so they are deterministic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "args.h"
#include "fmt.h"
#include "gmem.h"
#include "pace.h"
#include "pick.h"
#include "prng.h"
#include "vpage.h"
#include "zipf.h"

/* args */

static void expect_value_of(const char *args, const char *key, const char *want)
{
	const char *v;
	size_t len;

	if (!want) {
		assert_int_equal(args_find(args, key, &v, &len), 0);
		return;
	}
	assert_int_equal(args_find(args, key, &v, &len), 1);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(v, want, len);
}

static void test_args_find(void **state)
{
	(void)state;
	expect_value_of("rate=20000,wss=256M,pattern=zipf", "rate", "20000");
	expect_value_of("rate=20000,wss=256M,pattern=zipf", "wss", "256M");
	expect_value_of("rate=20000,wss=256M,pattern=zipf", "pattern", "zipf");
	expect_value_of("rate=20000,wss=256M,pattern=zipf", "hot", NULL);
	expect_value_of("wss=1M", "ws", NULL);		/* no prefix matches */
	expect_value_of("ws=1M", "wss", NULL);
	expect_value_of("rate=1,rate=2", "rate", "2");	/* the last one counts */
	expect_value_of(" rate = 5 , ,wss=1G,", "rate", "5");
	expect_value_of(" rate = 5 , ,wss=1G,", "wss", "1G");
	expect_value_of("rate=", "rate", "");
	expect_value_of("rate", "rate", NULL);		/* no '=': no value */
	expect_value_of("", "rate", NULL);
	expect_value_of(",,,", "rate", NULL);
	expect_value_of("a=b=c", "a", "b=c");
}

static void test_args_unknown(void **state)
{
	static const char *const known[] = { "rate", "wss", NULL };
	static const char *const none[] = { NULL };
	const char *item;
	size_t len;

	(void)state;
	assert_int_equal(args_unknown("rate=1,wss=2M", known, &item, &len), 0);
	assert_int_equal(args_unknown("", known, &item, &len), 0);
	assert_int_equal(args_unknown(" , ", none, &item, &len), 0);
	assert_int_equal(args_unknown("rate=1,wsss=2M", known, &item, &len), 1);
	assert_int_equal(len, 7);
	assert_memory_equal(item, "wsss=2M", 7);
	assert_int_equal(args_unknown("rate", known, &item, &len), 1);
	assert_memory_equal(item, "rate", 4);
	assert_int_equal(args_unknown("=5", known, &item, &len), 1);
	assert_int_equal(args_unknown("rate=1", none, &item, &len), 1);
}

static int size_of(const char *s, uint64_t *v)
{
	return args_parse_size(s, strlen(s), v);
}

static void test_args_size(void **state)
{
	static const struct { const char *s; uint64_t v; } good[] = {
		{ "0", 0 }, { "4096", 4096 }, { "64K", 64ULL << 10 }, { "64k", 64ULL << 10 },
		{ "256M", 256ULL << 20 }, { "2G", 2ULL << 30 }, { "1T", 1ULL << 40 },
		{ "2GiB", 2ULL << 30 }, { "4KB", 4096 }, { "512B", 512 },
		{ "16777215T", 16777215ULL << 40 },
		{ "18446744073709551615", UINT64_MAX },
	};
	static const char *const bad[] = {
		"", "K", "12X", "1.5G", "-1", "1 G", "1GB2", "1Gi", "1iB",
		"16777216T", "18446744073709551616", "99999999999999999999999",
	};
	uint64_t v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 1234;
		if (size_of(good[i].s, &v) != 0)
			fail_msg("'%s' rejected", good[i].s);
		if (v != good[i].v)
			fail_msg("'%s' = %llu, want %llu", good[i].s, (unsigned long long)v,
				 (unsigned long long)good[i].v);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (size_of(bad[i], &v) == 0)
			fail_msg("'%s' accepted as %llu", bad[i], (unsigned long long)v);
	/* Only the span counts, not what follows it. */
	assert_int_equal(args_parse_size("64K,rate=1", 3, &v), 0);
	assert_int_equal(v, 64 << 10);
}

static void test_args_u64(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(args_parse_u64("20000", 5, &v), 0);
	assert_int_equal(v, 20000);
	assert_int_equal(args_parse_u64("18446744073709551615", 20, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(args_parse_u64("18446744073709551616", 20, &v), -1);
	assert_int_equal(args_parse_u64("", 0, &v), -1);
	assert_int_equal(args_parse_u64("12K", 3, &v), -1);
	assert_int_equal(args_parse_u64("+1", 2, &v), -1);
	assert_int_equal(args_equal("zipf", 4, "zipf"), 1);
	assert_int_equal(args_equal("zip", 3, "zipf"), 0);
	assert_int_equal(args_equal("zipfx", 5, "zipf"), 0);
}

/* fmt: compared with the C library */

#define FMT_SAME(...)							\
	do {								\
		char a[128], b[128];					\
		int na = fmt_snprintf(a, sizeof(a), __VA_ARGS__);	\
		int nb = snprintf(b, sizeof(b), __VA_ARGS__);		\
		assert_string_equal(a, b);				\
		assert_int_equal(na, nb);				\
	} while (0)

static void test_fmt(void **state)
{
	char small[8];
	int n;

	(void)state;
	FMT_SAME("plain text");
	FMT_SAME("%d %d %d %i", 0, -1, 2147483647, -2147483647 - 1);
	FMT_SAME("%u %x %X", 4294967295U, 0xdeadbeefU, 0xdeadbeefU);
	FMT_SAME("%lu %ld %lx", 18446744073709551615UL, -9223372036854775807L - 1, 0x1UL);
	FMT_SAME("%llu %lld %llx", 18446744073709551615ULL, -5LL, 0xfedcba9876543210ULL);
	FMT_SAME("%zu %zx", (size_t)12345, (size_t)0xabc);
	FMT_SAME("[%5d] [%-5d] [%05d] [%05d] [%-6u]", 42, 42, 42, -42, 7U);
	FMT_SAME("[%016llx] [%3x] [%1u]", 0x1234ULL, 0xabcdefU, 123U);
	FMT_SAME("[%s] [%8s] [%-8s] [%c] [%3c]", "abc", "abc", "abc", 'x', 'y');
	FMT_SAME("100%% %s", "done");
	FMT_SAME("%p", (void *)0x200000);
	FMT_SAME("%s[%u]: %llu pages (%llu MiB)\n", "dirtier", 3U, 65536ULL, 256ULL);

	/* Truncation: always NUL-terminated, returns the full length. */
	n = fmt_snprintf(small, sizeof(small), "%s", "0123456789");
	assert_int_equal(n, 10);
	assert_string_equal(small, "0123456");
	n = fmt_snprintf(small, sizeof(small), "%llu", 18446744073709551615ULL);
	assert_int_equal(n, 20);
	assert_string_equal(small, "1844674");
	n = fmt_snprintf(NULL, 0, "%d", 12345);
	assert_int_equal(n, 5);
}

/* prng */

static void test_prng(void **state)
{
	struct prng a, b;
	uint64_t counts[10] = { 0 };
	unsigned int i, same = 0;
	uint64_t v;

	(void)state;
	prng_seed(&a, 1, 0);
	prng_seed(&b, 1, 1);
	for (i = 0; i < 1000; i++)
		same += prng_next(&a) == prng_next(&b);
	assert_int_equal(same, 0);		/* streams are unrelated */
	prng_seed(&a, 7, 3);
	prng_seed(&b, 7, 3);
	for (i = 0; i < 100; i++)
		assert_true(prng_next(&a) == prng_next(&b));	/* and reproducible */

	/* prng_below: in range, about uniform (each bin 100000 +- 2%). */
	prng_seed(&a, 42, 0);
	for (i = 0; i < 1000000; i++) {
		v = prng_below(&a, 10);
		assert_true(v < 10);
		counts[v]++;
	}
	for (i = 0; i < 10; i++)
		assert_in_range(counts[i], 98000, 102000);
	for (i = 0; i < 1000; i++) {
		assert_true(prng_below(&a, 1) == 0);
		assert_true(prng_below(&a, 3ULL << 62) < (3ULL << 62));
	}
}

/* zipf */

static unsigned int ticks;

static void count_tick(void *arg)
{
	(void)arg;
	ticks++;
}

static double harmonic(uint64_t n)
{
	double h = 0;
	uint64_t k;

	for (k = 1; k <= n; k++)
		h += 1.0 / (double)k;
	return h;
}

static void test_zipf_table(void **state)
{
	static uint32_t q[ZIPF_BUCKETS + 1];
	struct zipf z;
	struct prng r;
	unsigned int j;

	(void)state;
	assert_int_equal(zipf_init(&z, q, 0, NULL, NULL), -1);
	assert_int_equal(zipf_init(&z, q, ZIPF_MAX_RANKS + 1, NULL, NULL), -1);

	assert_int_equal(zipf_init(&z, q, 1, NULL, NULL), 0);
	prng_seed(&r, 1, 0);
	for (j = 0; j < 1000; j++)
		assert_true(zipf_sample(&z, &r) == 0);

	/* Monotonic, from rank 0 to rank n-1. */
	ticks = 0;
	assert_int_equal(zipf_init(&z, q, 300000, count_tick, NULL), 0);
	assert_true(ticks >= 4);	/* 2 passes, every 65536 ranks */
	assert_int_equal(q[0], 0);
	assert_int_equal(q[ZIPF_BUCKETS], 300000 - 1);
	for (j = 0; j < ZIPF_BUCKETS; j++)
		assert_true(q[j] <= q[j + 1]);
}

/* Sample frequencies against 1/(k+1)/H(n). */
static void check_zipf(uint64_t n)
{
	static uint32_t q[ZIPF_BUCKETS + 1];
	const unsigned int samples = 2000000;
	uint64_t top = n / 10 ? n / 10 : 1;
	unsigned int i, c0 = 0, c1 = 0, ctop = 0;
	double h = harmonic(n), f0, f1, ftop, want_top;
	struct zipf z;
	struct prng r;
	uint64_t k;

	assert_int_equal(zipf_init(&z, q, n, NULL, NULL), 0);
	prng_seed(&r, 99, 0);
	for (i = 0; i < samples; i++) {
		k = zipf_sample(&z, &r);
		assert_true(k < n);
		c0 += k == 0;
		c1 += k == 1;
		ctop += k < top;
	}
	f0 = (double)c0 / samples;
	f1 = (double)c1 / samples;
	ftop = (double)ctop / samples;
	want_top = harmonic(top) / h;
	print_message("# zipf n=%llu: P(0) %.4f want %.4f, P(1) %.4f want %.4f, "
		      "P(top 10%%) %.4f want %.4f\n", (unsigned long long)n,
		      f0, 1 / h, f1, 0.5 / h, ftop, want_top);
	/* The table quantizes probability to 1/ZIPF_BUCKETS. */
	assert_true(f0 > 1 / h - 0.003 && f0 < 1 / h + 0.003);
	assert_true(f1 > 0.5 / h - 0.003 && f1 < 0.5 / h + 0.003);
	assert_true(ftop > want_top - 0.01 && ftop < want_top + 0.01);
}

static void test_zipf_distribution(void **state)
{
	(void)state;
	check_zipf(2);
	check_zipf(1000);
	check_zipf(262144);	/* 1 GiB of pages */
}

/* pick */

static void test_pick(void **state)
{
	static uint32_t q[ZIPF_BUCKETS + 1];
	struct pick p;
	unsigned int i, hot = 0;
	uint64_t v;

	(void)state;
	assert_int_equal(pick_init(&p, PICK_UNIFORM, 0, 10, 1, 0, q, NULL, NULL), -1);

	assert_int_equal(pick_init(&p, PICK_SEQUENTIAL, 3, 10, 1, 0, q, NULL, NULL), 0);
	for (i = 0; i < 9; i++)
		assert_true(pick_next(&p) == i % 3);

	assert_int_equal(pick_init(&p, PICK_UNIFORM, 1000, 10, 1, 0, q, NULL, NULL), 0);
	for (i = 0; i < 100000; i++)
		assert_true(pick_next(&p) < 1000);

	/* hot=10: pages [0, 100) of 1000 get 90% of the writes. */
	assert_int_equal(pick_init(&p, PICK_HOTCOLD, 1000, 10, 1, 0, q, NULL, NULL), 0);
	for (i = 0; i < 1000000; i++) {
		v = pick_next(&p);
		assert_true(v < 1000);
		hot += v < 100;
	}
	assert_in_range(hot, 895000, 905000);

	/* hot rounds down but keeps one page; hot=100 is uniform. */
	assert_int_equal(pick_init(&p, PICK_HOTCOLD, 5, 10, 1, 0, q, NULL, NULL), 0);
	assert_int_equal(p.hot, 1);
	assert_int_equal(pick_init(&p, PICK_HOTCOLD, 5, 100, 1, 0, q, NULL, NULL), 0);
	for (i = 0; i < 1000; i++)
		assert_true(pick_next(&p) < 5);

	assert_int_equal(pick_init(&p, PICK_ZIPF, 5000, 10, 1, 0, q, NULL, NULL), 0);
	for (i = 0; i < 100000; i++)
		assert_true(pick_next(&p) < 5000);

	assert_string_equal(pick_pattern_names[PICK_ZIPF], "zipf");
	assert_null(pick_pattern_names[PICK_ZIPF + 1]);
}

/* pace */

/* Events of nr vCPUs at rate over seconds of simulated TSC, each vCPU never late. */
static uint64_t pace_run(uint64_t hz, uint64_t rate, unsigned int nr, uint64_t seconds)
{
	struct pace p[KM_MAX_VCPUS];
	uint64_t end = 1000 + seconds * hz, total = 0, now;
	unsigned int i;

	for (i = 0; i < nr; i++) {
		pace_init(&p[i], hz, rate, nr, i, 1000);
		now = 1000;
		for (;;) {
			now += pace_due_in(&p[i], now);
			if (now >= end)
				break;
			pace_advance(&p[i]);
			total++;
		}
	}
	return total;
}

static void test_pace(void **state)
{
	struct pace p;
	uint64_t n;

	(void)state;
	/* Exact totals, also for awkward ratios and fewer events than vCPUs. */
	assert_int_equal(pace_run(3000000000ULL, 20000, 1, 2), 40000);
	n = pace_run(2893213000ULL, 7, 3, 10);
	assert_in_range(n, 69, 71);
	n = pace_run(2893213000ULL, 1, 16, 10);
	assert_in_range(n, 10, 10);
	n = pace_run(1000000, 3, 2, 10);
	assert_int_equal(n, 30);

	/* Unlimited: always due. */
	pace_init(&p, 1000000, 0, 4, 2, 5);
	assert_int_equal(pace_due_in(&p, 5), 0);
	pace_advance(&p);
	assert_int_equal(pace_due_in(&p, 5), 0);

	/* vCPU 1 of 2 at 2 events/s on a 1 MHz TSC: phase 0.5 s, interval 1 s. */
	pace_init(&p, 1000000, 2, 2, 1, 0);
	assert_int_equal(pace_due_in(&p, 0), 500000);
	assert_int_equal(pace_due_in(&p, 500000), 0);
	pace_advance(&p);
	assert_int_equal(pace_due_in(&p, 500000), 1000000);

	/* After a 5 s stall, only PACE_MAX_LAG_MS of backlog (here one interval) is due. */
	pace_init(&p, 1000000, 1000, 1, 0, 0);	/* 1 ms interval, 10 ms lag cap */
	n = 0;
	while (pace_due_in(&p, 5000000) == 0 && n < 100000) {
		pace_advance(&p);
		n++;
	}
	assert_in_range(n, 10, 11);

	/* A TSC that jumps backwards does not stall the schedule. */
	pace_init(&p, 1000000, 1000, 1, 0, 900000000);
	assert_int_equal(pace_due_in(&p, 1000), 0);
	pace_advance(&p);
	assert_int_equal(pace_due_in(&p, 1000), 1000);
}

/* gmem */

static void test_gmem(void **state)
{
	struct km_mem_range r[KM_BOOT_MAX_RANGES + 1] = {
		{ KM_FREE_GPA, KM_HOLE_START - KM_FREE_GPA },
		{ KM_HIGH_GPA, 1ULL << 30 },
	};
	struct gmem m;
	uint64_t lo, hi, prev, low_pages = (KM_HOLE_START - KM_FREE_GPA) >> 12;
	unsigned int i;

	(void)state;
	gmem_init(&m, r, 2);
	assert_int_equal(m.nr, 2);
	assert_true(m.total == low_pages + (1ULL << 18));
	assert_true(gmem_gpa(&m, 0) == KM_FREE_GPA);
	assert_true(gmem_gpa(&m, low_pages - 1) == KM_HOLE_START - KM_PAGE_SIZE);
	assert_true(gmem_gpa(&m, low_pages) == KM_HIGH_GPA);
	assert_true(gmem_gpa(&m, m.total - 1) == KM_HIGH_GPA + (1ULL << 30) - KM_PAGE_SIZE);

	/* Clipped to KM_FREE_GPA and whole pages; empty and wrapping ranges dropped. */
	r[0].start = 0;
	r[0].len = 16ULL << 20;
	r[1].start = 0x1000000 + 100;
	r[1].len = 3 * KM_PAGE_SIZE;
	r[2].start = 0x2000000;
	r[2].len = 0;
	r[3].start = UINT64_MAX - 10;
	r[3].len = 100;
	r[4].start = 0x3000000;
	r[4].len = KM_PAGE_SIZE;	/* beyond KM_BOOT_MAX_RANGES: ignored */
	gmem_init(&m, r, 5);
	assert_int_equal(m.nr, 2);
	assert_true(m.start[0] == KM_FREE_GPA);
	assert_true(m.pages[0] == (16ULL << 20) / KM_PAGE_SIZE - KM_FREE_GPA / KM_PAGE_SIZE);
	assert_true(m.start[1] == 0x1001000);
	assert_true(m.pages[1] == 2);

	/* Shares: contiguous, in order, complete, sizes within one. */
	for (i = 1; i <= KM_MAX_VCPUS; i++) {
		unsigned int v;

		prev = 0;
		for (v = 0; v < i; v++) {
			gmem_share(1003, i, v, &lo, &hi);
			assert_true(lo == prev);
			assert_true(hi - lo == 1003 / i || hi - lo == 1003 / i + 1);
			prev = hi;
		}
		assert_true(prev == 1003);
	}
	gmem_share(3, 16, 15, &lo, &hi);
	assert_true(lo == 3 && hi == 3);	/* more vCPUs than pages: empty share */
}

static void test_gmem_verify_layout(void **state)
{
	struct km_mem_range r[2] = {
		{ KM_FREE_GPA, (16ULL << 20) - KM_FREE_GPA },	/* 3072 pages */
		{ KM_HIGH_GPA, 1ULL << 30 },
	};
	struct gmem m;
	uint64_t t, n, total;

	(void)state;
	gmem_init(&m, r, 1);
	assert_int_equal(gmem_verify_layout(&m, 0, &t, &n), 0);
	assert_true(n + t <= m.total);
	assert_true(t * GMEM_VERSIONS_PER_PAGE >= n);
	assert_true(n + 1 + (n + 1 + 511) / 512 > m.total);	/* maximal */
	assert_int_equal(gmem_verify_layout(&m, 1000, &t, &n), 0);
	assert_true(n == 1000 && t == 2);
	assert_int_equal(gmem_verify_layout(&m, 512, &t, &n), 0);
	assert_true(t == 1);
	assert_int_equal(gmem_verify_layout(&m, 3072, &t, &n), -1);

	/* Every total from tiny to a few tables' worth: maximal and fitting. */
	for (total = 2; total < 3000; total++) {
		struct km_mem_range one = { KM_FREE_GPA, total * KM_PAGE_SIZE };

		gmem_init(&m, &one, 1);
		assert_int_equal(gmem_verify_layout(&m, 0, &t, &n), 0);
		assert_true(t == (n + 511) / 512);
		assert_true(n + t <= total);
		assert_true(n + 1 + (n + 1 + 511) / 512 > total);
	}
	gmem_init(&m, r, 0);
	assert_int_equal(gmem_verify_layout(&m, 0, &t, &n), -1);

	/* With two ranges, the table must still fit in the first. */
	gmem_init(&m, r, 2);
	assert_int_equal(gmem_verify_layout(&m, 0, &t, &n), 0);
	assert_true(t <= m.pages[0]);
	assert_true(n + t <= m.total);
	r[0].len = 2 * KM_PAGE_SIZE;	/* room for a 1024-page table only */
	r[1].len = 2000 * KM_PAGE_SIZE;
	gmem_init(&m, r, 2);
	assert_int_equal(gmem_verify_layout(&m, 0, &t, &n), 0);
	assert_true(t == 2 && n == 1024);
	assert_int_equal(gmem_verify_layout(&m, 1025, &t, &n), -1);
}

/* vpage */

static void test_vpage(void **state)
{
	static uint64_t page[VPAGE_WORDS], other[VPAGE_WORDS];
	unsigned int i;

	(void)state;
	memset(page, 0, sizeof(page));
	assert_int_equal(vpage_check(page, 0x400, 0), 0);
	page[77] = 1;
	assert_int_equal(vpage_check(page, 0x400, 0), 78);

	vpage_fill(page, 0x400, 1);
	assert_int_equal(vpage_check(page, 0x400, 1), 0);
	assert_true(page[0] == 0x400 && page[1] == 1);
	assert_int_equal(vpage_check(page, 0x400, 2), 2);	/* stale version */
	assert_int_equal(vpage_check(page, 0x401, 1), 1);	/* wrong frame */
	assert_int_equal(vpage_check(page, 0x400, 0), 1);	/* should be zero */

	/* Any single flipped bit anywhere is caught at its word. */
	for (i = 0; i < VPAGE_WORDS; i += 37) {
		vpage_fill(page, 0x12345, 9);
		page[i] ^= 1ULL << (i % 64);
		assert_int_equal(vpage_check(page, 0x12345, 9), i + 1);
	}

	/* Two versions of one page differ in every word but the frame number. */
	vpage_fill(page, 0x12345, 9);
	vpage_fill(other, 0x12345, 10);
	for (i = 1; i < VPAGE_WORDS; i++)
		assert_true(page[i] != other[i]);
	/* A header forged onto another version's body is caught too. */
	other[1] = 9;
	assert_true(vpage_check(other, 0x12345, 9) > 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_args_find),
		cmocka_unit_test(test_args_unknown),
		cmocka_unit_test(test_args_size),
		cmocka_unit_test(test_args_u64),
		cmocka_unit_test(test_fmt),
		cmocka_unit_test(test_prng),
		cmocka_unit_test(test_zipf_table),
		cmocka_unit_test(test_zipf_distribution),
		cmocka_unit_test(test_pick),
		cmocka_unit_test(test_pace),
		cmocka_unit_test(test_gmem),
		cmocka_unit_test(test_gmem_verify_layout),
		cmocka_unit_test(test_vpage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
