/*
 * The pre-copy convergence policy: after each read of the dirty set, go
 * on with another round, stop and copy, or give up at a limit; and how
 * the guest is slowed when it outruns the link: a per-vCPU dirty limit
 * first (if asked for), the all-vCPU throttle of auto-converge then.
 *
 * Pure: no KVM, no clock, no lock, no logging. The engine (mig.c,
 * mig__policy) feeds it what it measured; the offline simulator (sim.c)
 * feeds it what it replayed. Both call the same function, so a prediction
 * cannot drift from what the engine would decide.
 */
#ifndef KM_POLICY_H
#define KM_POLICY_H

#include <stdbool.h>
#include <stdint.h>

/* Auto-converge's steps, as QEMU's cpu-throttle-initial / -increment. */
#define POLICY_THROTTLE_INITIAL	20
#define POLICY_THROTTLE_STEP	10
#define POLICY_THROTTLE_MAX	99	/* kvm/throttle.h caps there too */
/* A round of fewer pages says little about the rate: the last good one is kept. */
#define POLICY_RATE_MIN_PAGES	64

enum policy_verdict {
	POLICY_CONTINUE,	/* send the dirty pages in another round */
	POLICY_STOP_AND_COPY,	/* the expected downtime fits: pause and send the rest */
	POLICY_LIMIT,		/* a round or time limit: give up, or copy anyway if forced */
};

struct policy_params {
	uint64_t downtime_ns;		/* the limit on the expected downtime */
	unsigned int max_rounds;	/* 0: none */
	uint64_t timeout_ns;		/* of the pre-copy phase; 0: none */
	bool auto_converge;
	unsigned int max_throttle;	/* auto-converge's cap, percent; 0: POLICY_THROTTLE_MAX */
	/*
	 * The per-vCPU dirty limit (kvm/dirtylimit.h) to put on every vCPU
	 * when the guest outruns the link, in MB/s; 0: none. Tried before the
	 * all-vCPU throttle, which then steps only if the guest still
	 * outruns the link POLICY_DIRTY_LIMIT_ROUNDS rounds later.
	 */
	double dirty_limit_mbps;
	bool force;			/* at a limit, stop and copy anyway */
};

/* Rounds a dirty limit is given to act before auto-converge adds the throttle. */
#define POLICY_DIRTY_LIMIT_ROUNDS	2

/* What the caller knows after reading the dirty set. */
struct policy_state {
	unsigned int rounds;		/* rounds completed (0: the bulk round is next) */
	uint64_t dirty;			/* pages dirty now, to send next */
	uint64_t round_pps;		/* pages/s of the last round (policy__rate); 0: none yet */
	uint64_t round_ns;		/* the last round's duration */
	uint64_t elapsed_ns;		/* since the migration started */
	unsigned int throttle_pct;	/* the throttle now */
	unsigned int dirty_limit_rounds;	/* rounds completed since the dirty limit came on */
	bool dirty_limit_on;		/* the dirty limit is on */
};

struct policy_decision {
	enum policy_verdict verdict;
	/* POLICY_LIMIT and force: stop and copy anyway (the caller's pause). */
	bool copy_anyway;
	/* The throttle to apply now; changed only by auto-converge on POLICY_CONTINUE. */
	unsigned int throttle_pct;
	bool throttle_changed;
	/* Put the dirty limit (p->dirty_limit_mbps) on every vCPU now; only on POLICY_CONTINUE. */
	bool dirty_limit_start;
	/* dirty at round_pps, ns; UINT64_MAX while no round measured a rate. */
	uint64_t expected_ns;
};

/* The decision for state s under parameters p, into *d. Never fails. */
void policy__decide(const struct policy_params *p, const struct policy_state *s,
		    struct policy_decision *d);

/*
 * The rate a round gives the next decision: pages over ns, unless the round
 * sent fewer than POLICY_RATE_MIN_PAGES and an earlier rate exists (then
 * prev_pps); never 0. ns 0 counts as 1.
 */
uint64_t policy__rate(uint64_t prev_pps, uint64_t pages, uint64_t ns);

#endif
