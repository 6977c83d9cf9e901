/*
 * Unit tests of the pre-copy simulator (migrate/sim.c) on synthetic traces
 * whose answers are worked out by hand in the comments; the decisions come
 * from migrate/policy.c, as the engine's do. Page bytes are 4096, no
 * per-page overhead, so a link of 4096 * N bytes/s sends N pages/s.
 */
#define _GNU_SOURCE
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "unit.h"
#include "bitmap.h"
#include "dtrace.h"
#include "migrate/sim.h"

#define MS	1000000ULL
#define PAGES	10000

typedef void (*set_fn)(unsigned int i, struct bitmap *b);

/* A trace of n intervals of 100 ms each, written and read back as a file would be. */
static struct dtrace *trace_of(unsigned int n, set_fn fn)
{
	struct dtrace_info info = { .page_size = 4096, .guest_pages = PAGES, .interval_ms = 100,
				    .vcpus = 1 };
	struct dtrace_cost cost = { 0 };
	struct dtrace_writer *w;
	struct dtrace *t;
	struct bitmap b;
	uint8_t *data;
	char err[256];
	unsigned int i;
	uint64_t prog;
	int fd = memfd_create("sim", MFD_CLOEXEC);
	off_t len;

	assert_true(fd >= 0);
	assert_ok(bitmap_init(&b, PAGES));
	assert_ok(dtrace__writer_new(fd, &info, &w));
	for (i = 0; i < n; i++) {
		bitmap_clear_all(&b);
		fn(i, &b);
		prog = 1000ULL * i;	/* 1000 units of work an interval */
		assert_ok(dtrace__put_interval(w, 100 * MS, &prog, &b));
	}
	assert_ok(dtrace__finish(w, &cost));
	dtrace__writer_free(w);
	bitmap_free(&b);
	len = lseek(fd, 0, SEEK_END);
	assert_non_null(data = malloc((size_t)len));
	assert_int_equal(pread(fd, data, (size_t)len, 0), len);
	close(fd);
	if (dtrace__parse(data, (size_t)len, &t, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	free(data);
	return t;
}

static struct sim_params params(uint64_t pages_per_s)
{
	struct sim_params p = {
		.bandwidth = 4096 * pages_per_s, .compress = 1.0, .page_overhead = 0,
		.policy = { .downtime_ns = 50 * MS, .max_rounds = 30, .timeout_ns = 600000 * MS },
	};
	return p;
}

/* A burst of 4000 pages, then 100 pages an interval. */
static void burst_then_quiet(unsigned int i, struct bitmap *b)
{
	bitmap_set_range(b, i == 0 ? 0 : 5000, i == 0 ? 4000 : 100);
}

/*
 * 40000 pages/s. Round 0 sends the 4100 pages the trace touches: 102.5 ms,
 * during which the guest runs interval 0 (4000 pages) and 2.5 ms of
 * interval 1 (2.5 % of its 100 pages: 2 or 3 by phase): about 4002.
 * Expected downtime at 40000/s: 100 ms, over 50: round 1, 4002 pages in
 * 100.05 ms, trace time 102.5 .. 202.55 ms: interval 1's remaining 97.5 %
 * and interval 2's first 2.55 %: about 100 pages: 2.5 ms, fits: stop.
 */
static void test_converges(void **state)
{
	struct dtrace *t = trace_of(10, burst_then_quiet);
	struct sim_params p = params(40000);
	struct sim_result r;

	(void)state;
	assert_ok(sim__run(t, &p, &r));
	assert_true(r.converged);
	assert_false(r.gave_up);
	assert_int_equal(r.rounds, 2);
	assert_int_equal(r.nr_round, 2);
	assert_int_equal(r.round[0].pages, 4100);
	assert_int_equal(r.round[0].duration_ns, 102500000);
	assert_true(r.round[0].expected_ns == UINT64_MAX);
	assert_in_range(r.round[1].pages, 4001, 4004);
	assert_in_range(r.final_pages, 98, 102);
	assert_in_range(r.downtime_ns, 2450 * 1000, 2550 * 1000);
	assert_int_equal(r.total_ns, r.precopy_ns + r.downtime_ns);
	assert_int_equal(r.pages, r.round[0].pages + r.round[1].pages + r.final_pages);
	assert_int_equal(r.bytes, 4096 * r.pages);
	/* Unthrottled, the guest did what the trace did in that time: 1000 units per 100 ms. */
	assert_true(r.has_progress);
	assert_int_equal(r.progress, r.progress_unthrottled);
	assert_in_range(r.progress, 1000, 2100);
	sim__free(&r);
	dtrace__free(t);
}

/*
 * The migration begins 150 ms into the same trace: round 0 sends what was
 * written before, interval 0's 4000 pages and half of interval 1's 100
 * (its phases [0, 0.5)): about 4050, in 101.25 ms at 40000 pages/s; the
 * guest meanwhile runs 150 .. 251.25 ms: the other half of interval 1
 * (phases [0.5, 1)) and the first 51.25 % of interval 2 (phases [0,
 * 0.5125)) of the same 100 pages: all 100, 2.5 ms, fits at once. Of
 * those, the 50 first written in that time (the other half) are new, at
 * pages 5000.. past the burst's: the scan of memory gets there after the
 * burst's 4000 pages (100 ms), when all 50 have been written (the first
 * 50 ms): they go with the bulk round, 4100 pages in 102.5 ms.
 */
static void test_start_later(void **state)
{
	struct dtrace *t = trace_of(10, burst_then_quiet);
	struct sim_params p = params(40000);
	struct sim_result r;

	(void)state;
	p.start_ns = 150 * MS;
	assert_ok(sim__run(t, &p, &r));
	assert_true(r.converged);
	assert_int_equal(r.rounds, 1);
	assert_int_equal(r.round[0].pages, 4100);
	assert_int_equal(r.round[0].duration_ns, 102500000);
	assert_int_equal(r.final_pages, 100);
	sim__free(&r);
	/* At or past the trace's end (1 s) there is nothing to replay from. */
	p.start_ns = 1000 * MS;
	assert_err(sim__run(t, &p, &r), KM_ERR_INVALID);
	dtrace__free(t);
}

/* The burst at pages 5000.., then 100 pages an interval below it. */
static void quiet_below_burst(unsigned int i, struct bitmap *b)
{
	bitmap_set_range(b, i == 0 ? 5000 : 0, i == 0 ? 4000 : 100);
}

/*
 * As test_start_later, but the 50 pages first written during the bulk
 * round lie below the burst: the scan is past each of them (at most 50
 * pages, 1.25 ms in) before the guest writes it (page p at its phase's
 * time, (phase - 0.5) x 100 ms): at most the one or two written in the
 * first 1.25 ms go with it. About 4050 pages.
 */
static void test_bulk_scan_order(void **state)
{
	struct dtrace *t = trace_of(10, quiet_below_burst);
	struct sim_params p = params(40000);
	struct sim_result r;

	(void)state;
	p.start_ns = 150 * MS;
	assert_ok(sim__run(t, &p, &r));
	assert_int_equal(r.rounds, 1);
	assert_in_range(r.round[0].pages, 4048, 4053);
	assert_int_equal(r.round[0].duration_ns, r.round[0].pages * 25000);
	/* They are dirty for the stop-and-copy all the same. */
	assert_int_equal(r.final_pages, 100);
	sim__free(&r);
	dtrace__free(t);
}

/*
 * test_start_later's round 0 read in batches, as the engine's encoder
 * does: with all of it one batch (the cap lets the next batch go only
 * when it is due, the encoder reads a whole batch at once), the scan has
 * read the pages at 5000.. before the guest writes the 50 new ones: about
 * 4050 pages. With batches of 1000 pages, the batch holding them is read
 * 4000 pages (100 ms) in: all 50 written by then: 4100.
 */
static void test_bulk_batches(void **state)
{
	struct dtrace *t = trace_of(10, burst_then_quiet);
	struct sim_params p = params(40000);
	struct sim_result r;

	(void)state;
	p.start_ns = 150 * MS;
	p.batch_bytes = 4096 * 8000;
	assert_ok(sim__run(t, &p, &r));
	assert_in_range(r.round[0].pages, 4048, 4052);
	assert_int_equal(r.round[0].duration_ns, r.round[0].pages * 25000);
	sim__free(&r);
	p.batch_bytes = 4096 * 1000;
	assert_ok(sim__run(t, &p, &r));
	assert_int_equal(r.round[0].pages, 4100);
	sim__free(&r);
	dtrace__free(t);
}

/* The same 1000 pages every interval. */
static void constant_set(unsigned int i, struct bitmap *b)
{
	(void)i;
	bitmap_set_range(b, 0, 1000);
}

/*
 * 10000 pages/s: each round sends 1000 pages in 100 ms exactly, during
 * which the guest dirties all 1000 again (one whole interval): the
 * expected downtime stays 100 ms > 50. Five rounds, then the limit.
 */
static void test_cannot_converge(void **state)
{
	struct dtrace *t = trace_of(10, constant_set);
	struct sim_params p = params(10000);
	struct sim_result r;
	unsigned int i;

	(void)state;
	p.policy.max_rounds = 5;
	assert_ok(sim__run(t, &p, &r));
	assert_false(r.converged);
	assert_true(r.gave_up);
	assert_int_equal(r.rounds, 5);
	for (i = 0; i < 5; i++) {
		assert_int_equal(r.round[i].pages, 1000);
		assert_int_equal(r.round[i].duration_ns, 100 * MS);
		assert_int_equal(r.round[i].start_ns, i * 100 * MS);
	}
	assert_int_equal(r.downtime_ns, 0);
	assert_int_equal(r.total_ns, 500 * MS);
	assert_int_equal(r.pages, 5000);
	sim__free(&r);
	/* Forced: the 1000 pages paused, 100 ms of downtime. */
	p.policy.force = true;
	assert_ok(sim__run(t, &p, &r));
	assert_true(r.forced);
	assert_int_equal(r.final_pages, 1000);
	assert_int_equal(r.downtime_ns, 100 * MS);
	assert_int_equal(r.total_ns, 600 * MS);
	sim__free(&r);
	/* Past the trace's end (1 s) it starts over: 30 rounds are 3 s, still 1000 a round. */
	p.policy.max_rounds = 30;
	assert_ok(sim__run(t, &p, &r));
	assert_int_equal(r.rounds, 30);
	assert_int_equal(r.round[29].pages, 1000);
	sim__free(&r);
	dtrace__free(t);
}

/*
 * As above, with auto-converge. Rounds 0 and 1: 1000 pages, 100 ms each.
 * After round 1 (2 rounds done) 1000 > half of 1000: throttle 20 %.
 * Round 2: 100 ms, the guest runs 80 ms: ~800 pages; throttle 30 %.
 * Round 3: 80 ms, the guest 56 ms: ~560 pages (> 400): throttle 40 %.
 * Round 4: 56 ms, the guest 33.6 ms: ~336 pages: 33.6 ms fits 50: stop.
 * The guest ran 100 + 100 + 80 + 56 + 33.6 = 369.6 ms of trace in 436 ms.
 * Its work: none known in interval 0 (no report before it), then 1000 an
 * interval: 2696 units; unthrottled, in 436 ms, 3360.
 */
static void test_auto_converge(void **state)
{
	struct dtrace *t = trace_of(10, constant_set);
	struct sim_params p = params(10000);
	struct sim_result r;

	(void)state;
	p.policy.auto_converge = true;
	assert_ok(sim__run(t, &p, &r));
	assert_true(r.converged);
	assert_int_equal(r.rounds, 5);
	assert_int_equal(r.round[1].throttle_pct, 0);
	assert_int_equal(r.round[2].throttle_pct, 20);
	assert_int_equal(r.round[3].throttle_pct, 30);
	assert_int_equal(r.round[4].throttle_pct, 40);
	assert_int_equal(r.throttle_pct, 40);
	assert_in_range(r.round[3].pages, 795, 805);
	assert_in_range(r.round[4].pages, 555, 565);
	assert_in_range(r.final_pages, 330, 342);
	assert_in_range(r.downtime_ns, 33 * MS, 34200 * 1000);
	assert_in_range(r.precopy_ns, 435 * MS, 437 * MS);
	/* The throttle cost the guest work. */
	assert_in_range(r.progress, 2680, 2710);
	assert_in_range(r.progress_unthrottled, 3350, 3370);
	sim__free(&r);
	dtrace__free(t);
}

/* Compression: a ratio of 4 sends a page in a quarter of the time. Bad parameters refused. */
static void test_compress_and_params(void **state)
{
	struct dtrace *t = trace_of(10, constant_set);
	struct sim_params p = params(2500);
	struct sim_result r;

	(void)state;
	p.compress = 4.0;
	p.policy.max_rounds = 2;
	assert_ok(sim__run(t, &p, &r));
	/* 2500 pages/s of 4096 bytes = 10000 pages/s of 1024: as test_cannot_converge. */
	assert_int_equal(r.round[0].duration_ns, 100 * MS);
	assert_int_equal(r.round[0].bytes, 1024 * 1000);
	sim__free(&r);
	p.compress = 0.5;
	assert_err(sim__run(t, &p, &r), KM_ERR_INVALID);
	p.compress = 1.0;
	p.bandwidth = 0;
	assert_err(sim__run(t, &p, &r), KM_ERR_INVALID);
	/* bulk_all: round 0 is the whole guest, 10000 pages. */
	p = params(10000);
	p.bulk_all = true;
	p.policy.max_rounds = 1;
	assert_ok(sim__run(t, &p, &r));
	assert_int_equal(r.round[0].pages, PAGES);
	sim__free(&r);
	dtrace__free(t);
}

/*
 * The fixed costs: the migration begins 100 ms into the trace and its
 * setup takes 50 ms, so the bulk round begins at 150 ms and sends what
 * test_start_later's did (4100 pages, 25 us each at 40000 pages/s) after
 * its 20 ms of fixed cost; the guest runs 150 .. 272.5 ms meanwhile:
 * interval 1's second half and most of interval 2: all 100 quiet pages,
 * 2.5 ms, fits. The downtime is those 2.5 ms plus the
 * 7 ms switchover; the total adds the setup.
 */
static void test_fixed_costs(void **state)
{
	struct dtrace *t = trace_of(10, burst_then_quiet);
	struct sim_params p = params(40000);
	struct sim_result r;

	(void)state;
	p.start_ns = 100 * MS;
	p.setup_ns = 50 * MS;
	p.bulk_ns = 20 * MS;
	p.round_ns = 3 * MS;
	p.switchover_ns = 7 * MS;
	assert_ok(sim__run(t, &p, &r));
	assert_true(r.converged);
	assert_int_equal(r.rounds, 1);
	assert_int_equal(r.round[0].pages, 4100);
	assert_int_equal(r.round[0].start_ns, 50 * MS);
	/* The bulk round's own fixed cost, not a later round's. */
	assert_int_equal(r.round[0].duration_ns, r.round[0].pages * 25000 + 20 * MS);
	assert_int_equal(r.final_pages, 100);
	assert_int_equal(r.downtime_ns, 2500 * 1000 + 7 * MS);
	assert_int_equal(r.setup_ns, 50 * MS);
	assert_int_equal(r.total_ns, 50 * MS + r.round[0].duration_ns + r.downtime_ns);
	sim__free(&r);
	/*
	 * From the trace's start (test_converges' two rounds): the bulk round
	 * pays its 20 ms, round 1 (interval 0's 4000 pages and what the
	 * first 122.5 ms of interval 1 add) the later rounds' 3 ms.
	 */
	p.start_ns = 0;
	p.setup_ns = 0;
	assert_ok(sim__run(t, &p, &r));
	assert_int_equal(r.rounds, 2);
	assert_int_equal(r.round[0].duration_ns, 4100 * 25000 + 20 * MS);
	assert_in_range(r.round[1].pages, 4001, 4030);
	assert_int_equal(r.round[1].duration_ns, r.round[1].pages * 25000 + 3 * MS);
	sim__free(&r);
	/* The bulk round would begin past the trace's end (1 s): nothing to replay. */
	p.start_ns = 960 * MS;
	p.setup_ns = 50 * MS;
	assert_err(sim__run(t, &p, &r), KM_ERR_INVALID);
	dtrace__free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_converges),
		cmocka_unit_test(test_start_later),
		cmocka_unit_test(test_bulk_scan_order),
		cmocka_unit_test(test_bulk_batches),
		cmocka_unit_test(test_cannot_converge),
		cmocka_unit_test(test_auto_converge),
		cmocka_unit_test(test_compress_and_params),
		cmocka_unit_test(test_fixed_costs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
