/* The pre-copy convergence policy: see policy.h. */
#include <stdint.h>

#include "migrate/policy.h"

void policy__decide(const struct policy_params *p, const struct policy_state *s,
		    struct policy_decision *d)
{
	unsigned int pct = s->throttle_pct, max;

	d->verdict = POLICY_CONTINUE;
	d->copy_anyway = false;
	d->throttle_pct = pct;
	d->throttle_changed = false;
	d->dirty_limit_start = false;
	/* Time to send the dirty pages at the rate the last round achieved. */
	d->expected_ns = s->round_pps ? (uint64_t)((double)s->dirty * 1e9 / (double)s->round_pps) :
			 UINT64_MAX;
	if (s->rounds == 0)
		return;		/* the bulk round is next */
	if (d->expected_ns <= p->downtime_ns) {
		d->verdict = POLICY_STOP_AND_COPY;
		return;
	}
	if ((p->max_rounds && s->rounds >= p->max_rounds) ||
	    (p->timeout_ns && s->elapsed_ns > p->timeout_ns)) {
		d->verdict = POLICY_LIMIT;
		d->copy_anyway = p->force;
		return;
	}
	/*
	 * The guest outruns the link, as QEMU's auto-converge judges it: it
	 * dirtied more than half of what the last round could send. Not after
	 * the bulk round alone: that round's length says nothing about the
	 * guest.
	 */
	if (s->rounds < 2 || !s->round_pps ||
	    (double)s->dirty <= 0.5 * (double)s->round_pps * (double)s->round_ns / 1e9)
		return;
	/*
	 * The dirty limit first, as QEMU's dirty-limit: it slows only the
	 * vCPUs that write, so a vCPU that computes keeps its speed.
	 */
	if (p->dirty_limit_mbps && !s->dirty_limit_on) {
		d->dirty_limit_start = true;
		return;
	}
	/* Auto-converge: slow every vCPU down a step, up to the cap. */
	if (p->auto_converge &&
	    (!s->dirty_limit_on || s->dirty_limit_rounds >= POLICY_DIRTY_LIMIT_ROUNDS)) {
		max = p->max_throttle && p->max_throttle < POLICY_THROTTLE_MAX ? p->max_throttle :
		      POLICY_THROTTLE_MAX;
		pct = pct == 0 ? POLICY_THROTTLE_INITIAL : pct + POLICY_THROTTLE_STEP;
		if (pct > max)
			pct = max;
		d->throttle_pct = pct;
		d->throttle_changed = true;
	}
}

uint64_t policy__rate(uint64_t prev_pps, uint64_t pages, uint64_t ns)
{
	uint64_t pps;

	if (ns == 0)
		ns = 1;
	if (pages < POLICY_RATE_MIN_PAGES && prev_pps)
		return prev_pps;
	pps = (uint64_t)((double)pages * 1e9 / (double)ns);
	return pps ? pps : 1;
}
