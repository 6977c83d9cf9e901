/* TSC rate pacing (pace.h). */
#include "pace.h"

void pace_init(struct pace *p, uint64_t tsc_hz, uint64_t rate, unsigned int nr,
	       unsigned int idx, uint64_t now)
{
	/* nr * tsc_hz < 2^64: nr <= 16 and TSCs run well below 10^17 Hz. */
	uint64_t span = (uint64_t)nr * tsc_hz;

	p->unlimited = rate == 0;
	p->frac = 0;
	if (p->unlimited) {
		p->next = now;
		p->step = p->rem = 0;
		p->den = 1;
		p->max_lag = p->max_ahead = 0;
		return;
	}
	p->step = span / rate;
	p->rem = span % rate;
	p->den = rate;
	/* This vCPU's phase: idx / rate seconds after the first. */
	p->next = now + (uint64_t)idx * tsc_hz / rate;
	p->max_lag = tsc_hz / 1000 * PACE_MAX_LAG_MS;
	if (p->max_lag < p->step)
		p->max_lag = p->step;
	/* Phase plus one interval: never legitimately further ahead. */
	p->max_ahead = 2 * (p->step + 1);
}

uint64_t pace_due_in(struct pace *p, uint64_t now)
{
	int64_t d;

	if (p->unlimited)
		return 0;
	d = (int64_t)(p->next - now);
	if (d > (int64_t)p->max_ahead) {	/* TSC went backwards */
		p->next = now;
		return 0;
	}
	if (d < -(int64_t)p->max_lag) {		/* far behind: drop the backlog */
		p->next = now - p->max_lag;
		p->frac = 0;
		return 0;
	}
	return d > 0 ? (uint64_t)d : 0;
}

void pace_advance(struct pace *p)
{
	if (p->unlimited)
		return;
	p->next += p->step;
	p->frac += p->rem;
	if (p->frac >= p->den) {
		p->frac -= p->den;
		p->next++;
	}
}
