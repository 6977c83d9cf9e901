/*
 * Rate pacing by TSC, pure arithmetic (the guest feeds it RDTSC values).
 *
 * A total rate R events/s shared by nr vCPUs: vCPU i's k-th event is due at
 * t0 + (k * nr + i) / R seconds, so the vCPUs interleave evenly and the
 * total is exact even when R < nr. The per-vCPU interval nr * hz / R ticks
 * is kept as an integer and a remainder (Bresenham), so there is no drift
 * and no 128-bit division. A vCPU that falls behind (a pause, a migration,
 * a rate it cannot reach) catches up by at most PACE_MAX_LAG_MS worth of
 * events rather than bursting through the whole backlog.
 */
#ifndef KM_GUEST_PACE_H
#define KM_GUEST_PACE_H

#include <stdint.h>

#define PACE_MAX_LAG_MS	10

struct pace {
	uint64_t next;		/* TSC at which the next event is due */
	uint64_t step;		/* whole ticks of one interval */
	uint64_t rem, den;	/* plus rem/den of a tick */
	uint64_t frac;		/* accumulated fraction, < den */
	uint64_t max_lag;	/* ticks */
	uint64_t max_ahead;	/* ticks; more means the TSC went backwards */
	int unlimited;		/* rate 0: every event is due at once */
};

/*
 * rate: total events per second over nr vCPUs (0: unlimited); idx: this
 * vCPU (< nr); tsc_hz: TSC ticks per second (> 0); now: current TSC.
 */
void pace_init(struct pace *p, uint64_t tsc_hz, uint64_t rate, unsigned int nr,
	       unsigned int idx, uint64_t now);

/*
 * Ticks until the next event is due at TSC now (0: due). Also repairs the
 * schedule if the caller lags by more than max_lag or if the TSC moved
 * backwards (a restore onto another host).
 */
uint64_t pace_due_in(struct pace *p, uint64_t now);

/* The event happened: schedule the next one. */
void pace_advance(struct pace *p);

#endif
