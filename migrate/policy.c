/* The pre-copy convergence policy: see policy.h. */
#include <stdint.h>

#include "migrate/policy.h"

void policy__decide(const struct policy_params *p, const struct policy_state *s,
		    struct policy_decision *d)
{
	unsigned int pct = s->throttle_pct;

	d->verdict = POLICY_CONTINUE;
	d->copy_anyway = false;
	d->throttle_pct = pct;
	d->throttle_changed = false;
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
	 * Auto-converge, as QEMU's: when the guest dirtied more than half of
	 * what the last round could send, slow its vCPUs down a step. Not
	 * after the bulk round alone: that round's length says nothing about
	 * the guest.
	 */
	if (p->auto_converge && s->rounds >= 2 && s->round_pps &&
	    (double)s->dirty > 0.5 * (double)s->round_pps * (double)s->round_ns / 1e9) {
		pct = pct == 0 ? POLICY_THROTTLE_INITIAL : pct + POLICY_THROTTLE_STEP;
		if (pct > POLICY_THROTTLE_MAX)
			pct = POLICY_THROTTLE_MAX;
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
