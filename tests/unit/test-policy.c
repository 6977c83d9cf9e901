/*
 * Unit tests of the convergence policy (migrate/policy.c), the one the
 * engine and the simulator share: each decision with the numbers that make
 * it, and the edges (exactly the limit, the bulk round, the throttle's
 * steps and cap).
 */
#include "config.h"

#include <stdint.h>

#include "unit.h"
#include "migrate/policy.h"

#define MS	1000000ULL

static const struct policy_params P = {
	.downtime_ns = 50 * MS, .max_rounds = 30, .timeout_ns = 600000 * MS,
};

static struct policy_decision decide(const struct policy_params *p, unsigned int rounds,
				     uint64_t dirty, uint64_t pps, uint64_t round_ns,
				     uint64_t elapsed_ns, unsigned int pct)
{
	struct policy_state s = { .rounds = rounds, .dirty = dirty, .round_pps = pps,
				  .round_ns = round_ns, .elapsed_ns = elapsed_ns,
				  .throttle_pct = pct };
	struct policy_decision d;

	policy__decide(p, &s, &d);
	return d;
}

/* Before the bulk round nothing is known: always a round, whatever is dirty. */
static void test_bulk_round_first(void **state)
{
	struct policy_decision d = decide(&P, 0, 262144, 0, 0, 0, 0);

	(void)state;
	assert_int_equal(d.verdict, POLICY_CONTINUE);
	assert_true(d.expected_ns == UINT64_MAX);
	assert_false(d.throttle_changed);
	/* Even with nothing dirty (an empty VM): the bulk round still runs. */
	d = decide(&P, 0, 0, 100000, 1 * MS, 0, 0);
	assert_int_equal(d.verdict, POLICY_CONTINUE);
}

/* 5000 pages at 100000 pages/s: 50 ms expected, exactly the limit: stop. One more: go on. */
static void test_stop_when_it_fits(void **state)
{
	struct policy_decision d = decide(&P, 1, 5000, 100000, 1000 * MS, 1000 * MS, 0);

	(void)state;
	assert_int_equal(d.verdict, POLICY_STOP_AND_COPY);
	assert_int_equal(d.expected_ns, 50 * MS);
	d = decide(&P, 1, 5001, 100000, 1000 * MS, 1000 * MS, 0);
	assert_int_equal(d.verdict, POLICY_CONTINUE);
	assert_true(d.expected_ns > 50 * MS);
}

static void test_round_limit(void **state)
{
	struct policy_params p = P;
	struct policy_decision d;

	(void)state;
	p.max_rounds = 3;
	d = decide(&p, 2, 100000, 100000, 1000 * MS, 2000 * MS, 0);
	assert_int_equal(d.verdict, POLICY_CONTINUE);
	d = decide(&p, 3, 100000, 100000, 1000 * MS, 3000 * MS, 0);
	assert_int_equal(d.verdict, POLICY_LIMIT);
	assert_false(d.copy_anyway);
	p.force = true;
	d = decide(&p, 3, 100000, 100000, 1000 * MS, 3000 * MS, 0);
	assert_int_equal(d.verdict, POLICY_LIMIT);
	assert_true(d.copy_anyway);
	/* Fitting wins over the limit: a last round that converged is not a failure. */
	d = decide(&p, 3, 10, 100000, 1000 * MS, 3000 * MS, 0);
	assert_int_equal(d.verdict, POLICY_STOP_AND_COPY);
	/* max_rounds 0 is no limit. */
	p.max_rounds = 0;
	d = decide(&p, 1000, 100000, 100000, 1000 * MS, 3000 * MS, 0);
	assert_int_equal(d.verdict, POLICY_CONTINUE);
}

static void test_time_limit(void **state)
{
	struct policy_params p = P;
	struct policy_decision d;

	(void)state;
	p.timeout_ns = 5000 * MS;
	d = decide(&p, 4, 100000, 100000, 1000 * MS, 5000 * MS, 0);
	assert_int_equal(d.verdict, POLICY_CONTINUE);	/* not past it yet */
	d = decide(&p, 4, 100000, 100000, 1000 * MS, 5000 * MS + 1, 0);
	assert_int_equal(d.verdict, POLICY_LIMIT);
	p.timeout_ns = 0;
	d = decide(&p, 4, 100000, 100000, 1000 * MS, 999999 * MS, 0);
	assert_int_equal(d.verdict, POLICY_CONTINUE);
}

/* 20 %, then +10 % a round while the guest dirties over half of what a round sends; 99 % at most. */
static void test_auto_converge_steps(void **state)
{
	struct policy_params p = P;
	struct policy_decision d;
	unsigned int pct = 0, i;

	(void)state;
	p.auto_converge = true;
	p.max_rounds = 0;
	/* After the bulk round alone: no throttle yet. */
	d = decide(&p, 1, 90000, 100000, 1000 * MS, 1000 * MS, 0);
	assert_int_equal(d.verdict, POLICY_CONTINUE);
	assert_false(d.throttle_changed);
	assert_int_equal(d.throttle_pct, 0);
	/* Half of a round's capacity (50000 pages in 1 s at 100000/s) is not over half. */
	d = decide(&p, 2, 50000, 100000, 1000 * MS, 2000 * MS, 0);
	assert_false(d.throttle_changed);
	for (i = 0; i < 12; i++) {
		d = decide(&p, 2 + i, 50001, 100000, 1000 * MS, 2000 * MS, pct);
		assert_int_equal(d.verdict, POLICY_CONTINUE);
		assert_true(d.throttle_changed);
		assert_int_equal(d.throttle_pct, i < 8 ? 20 + 10 * i : 99);
		pct = d.throttle_pct;
	}
	/* Without auto-converge the throttle is left alone. */
	d = decide(&P, 5, 90000, 100000, 1000 * MS, 5000 * MS, 40);
	assert_false(d.throttle_changed);
	assert_int_equal(d.throttle_pct, 40);
}

/* max_throttle caps the steps below 99 %. */
static void test_max_throttle(void **state)
{
	struct policy_params p = P;
	struct policy_decision d;

	(void)state;
	p.auto_converge = true;
	p.max_throttle = 50;
	d = decide(&p, 5, 90000, 100000, 1000 * MS, 5000 * MS, 40);
	assert_int_equal(d.throttle_pct, 50);
	d = decide(&p, 6, 90000, 100000, 1000 * MS, 6000 * MS, 50);
	assert_int_equal(d.throttle_pct, 50);
	p.max_throttle = 100;	/* above the hard cap: the hard cap */
	d = decide(&p, 6, 90000, 100000, 1000 * MS, 6000 * MS, 95);
	assert_int_equal(d.throttle_pct, 99);
}

static struct policy_decision decide_dl(const struct policy_params *p, unsigned int rounds,
					uint64_t dirty, unsigned int pct, bool on,
					unsigned int since)
{
	struct policy_state s = { .rounds = rounds, .dirty = dirty, .round_pps = 100000,
				  .round_ns = 1000 * MS, .elapsed_ns = rounds * 1000 * MS,
				  .throttle_pct = pct, .dirty_limit_on = on,
				  .dirty_limit_rounds = since };
	struct policy_decision d;

	policy__decide(p, &s, &d);
	return d;
}

/*
 * The dirty limit comes on when the guest outruns the link, before any
 * throttle; auto-converge adds the throttle only if the guest still
 * outruns it POLICY_DIRTY_LIMIT_ROUNDS rounds later.
 */
static void test_dirty_limit_first(void **state)
{
	struct policy_params p = P;
	struct policy_decision d;

	(void)state;
	p.dirty_limit_mbps = 10;
	/* Not after the bulk round alone, nor when the guest keeps up. */
	d = decide_dl(&p, 1, 90000, 0, false, 0);
	assert_false(d.dirty_limit_start);
	d = decide_dl(&p, 2, 50000, 0, false, 0);
	assert_false(d.dirty_limit_start);
	d = decide_dl(&p, 2, 90000, 0, false, 0);
	assert_int_equal(d.verdict, POLICY_CONTINUE);
	assert_true(d.dirty_limit_start);
	assert_false(d.throttle_changed);
	/* On already, without auto-converge: nothing more. */
	d = decide_dl(&p, 3, 90000, 0, true, 1);
	assert_false(d.dirty_limit_start);
	assert_false(d.throttle_changed);
	/* With auto-converge: the throttle waits for the limit's rounds, then steps. */
	p.auto_converge = true;
	d = decide_dl(&p, 2, 90000, 0, false, 0);
	assert_true(d.dirty_limit_start);
	assert_false(d.throttle_changed);
	d = decide_dl(&p, 3, 90000, 0, true, POLICY_DIRTY_LIMIT_ROUNDS - 1);
	assert_false(d.throttle_changed);
	d = decide_dl(&p, 4, 90000, 0, true, POLICY_DIRTY_LIMIT_ROUNDS);
	assert_true(d.throttle_changed);
	assert_int_equal(d.throttle_pct, 20);
	/* Stop-and-copy wins as always. */
	d = decide_dl(&p, 4, 10, 0, true, 5);
	assert_int_equal(d.verdict, POLICY_STOP_AND_COPY);
	assert_false(d.dirty_limit_start);
}

static void test_rate(void **state)
{
	(void)state;
	assert_int_equal(policy__rate(0, 1000, 10 * MS), 100000);
	/* A tiny round keeps the last good rate; without one it counts. */
	assert_int_equal(policy__rate(100000, 63, 10 * MS), 100000);
	assert_int_equal(policy__rate(0, 63, 10 * MS), 6300);
	assert_int_equal(policy__rate(100000, 64, 10 * MS), 6400);
	/* Never 0 (0 would mean "no rate yet"), and a 0 ns round is 1 ns. */
	assert_int_equal(policy__rate(0, 0, 10 * MS), 1);
	assert_int_equal(policy__rate(0, 100, 0), 100000000000ULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bulk_round_first),
		cmocka_unit_test(test_stop_when_it_fits),
		cmocka_unit_test(test_round_limit),
		cmocka_unit_test(test_time_limit),
		cmocka_unit_test(test_auto_converge_steps),
		cmocka_unit_test(test_max_throttle),
		cmocka_unit_test(test_dirty_limit_first),
		cmocka_unit_test(test_rate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
