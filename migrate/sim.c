/* The offline pre-copy simulator: see sim.h for the model. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap.h"
#include "err.h"
#include "migrate/sim.h"

struct sim {
	const struct dtrace *t;
	double *start;			/* interval i runs [start[i], start[i + 1]) in trace ns */
	double len;			/* the trace's length, ns */
	double *delta;			/* progress made in interval i (0 if not known) */
	double progress_cycle;		/* in the whole trace */
};

/*
 * When in each interval page p is taken to be written, in [0, 1): a
 * golden-ratio (Weyl) sequence, so that any part of a run of pages gets
 * its share of a stretch of time, evenly, without a random number.
 */
static double sim__phase(uint64_t p)
{
	return (double)(p * 0x9E3779B97F4A7C15ULL) / 18446744073709551616.0;
}

/* Interval i's pages written in its phases [f0, f1). */
static void sim__add_part(const struct sim *s, uint64_t i, double f0, double f1, struct bitmap *b)
{
	const struct dtrace_interval *iv = &s->t->iv[i];
	const struct dtrace_run *r;
	uint64_t k, p;
	double ph;

	for (k = 0; k < iv->nr_runs; k++) {
		r = &s->t->runs[iv->first_run + k];
		if (f0 <= 0.0 && f1 >= 1.0) {
			bitmap_set_range(b, r->start, r->len);
			continue;
		}
		for (p = r->start; p < r->start + r->len; p++) {
			ph = sim__phase(p);
			if (ph >= f0 && ph < f1)
				bitmap_set(b, p);
		}
	}
}

/* The pages dirtied in trace time [a, b) (0 <= a < b <= len) into bm; the progress made. */
static double sim__segment(const struct sim *s, double a, double b, struct bitmap *bm)
{
	double st, en, f0, f1, progress = 0;
	uint64_t i;

	for (i = 0; i < s->t->nr_iv; i++) {
		st = s->start[i];
		en = s->start[i + 1];
		if (st == en) {		/* an interval of no time: a point */
			if (st >= a && st < b) {
				if (bm)
					sim__add_part(s, i, 0.0, 1.0, bm);
				progress += s->delta[i];
			}
			continue;
		}
		if (en <= a)
			continue;
		if (st >= b)
			break;
		f0 = (fmax(a, st) - st) / (en - st);
		f1 = (fmin(b, en) - st) / (en - st);
		if (bm)
			sim__add_part(s, i, f0, f1, bm);
		progress += s->delta[i] * (f1 - f0);
	}
	return progress;
}

/* Trace time [tau, tau + dt) with tau in [0, len), the trace repeating; bm may be NULL. */
static double sim__window(const struct sim *s, double tau, double dt, struct bitmap *bm)
{
	double progress = 0;

	if (dt <= 0)
		return 0;
	if (dt >= s->len) {
		/* At least the whole trace: every page it dirties; progress for every cycle. */
		progress = s->progress_cycle * floor(dt / s->len);
		if (bm)
			(void)sim__segment(s, 0, s->len, bm);
		dt = fmod(dt, s->len);
		if (dt <= 0)
			return progress;
		if (tau + dt <= s->len)
			return progress + sim__segment(s, tau, tau + dt, NULL);
		return progress + sim__segment(s, tau, s->len, NULL) +
		       sim__segment(s, 0, tau + dt - s->len, NULL);
	}
	if (tau + dt <= s->len)
		return sim__segment(s, tau, tau + dt, bm);
	return sim__segment(s, tau, s->len, bm) + sim__segment(s, 0, tau + dt - s->len, bm);
}

static int sim__init(struct sim *s, const struct dtrace *t)
{
	uint64_t i;

	memset(s, 0, sizeof(*s));
	s->t = t;
	if (!(s->start = calloc(t->nr_iv + 1, sizeof(*s->start))) ||
	    !(s->delta = calloc(t->nr_iv + 1, sizeof(*s->delta))))
		return -ENOMEM;
	for (i = 0; i < t->nr_iv; i++) {
		s->start[i + 1] = s->start[i] + (double)t->iv[i].duration_ns;
		/* Progress made in an interval: known when it and the one before report. */
		if (i > 0 && t->iv[i].has_progress && t->iv[i - 1].has_progress)
			s->delta[i] = (double)(t->iv[i].progress - t->iv[i - 1].progress);
		s->progress_cycle += s->delta[i];
	}
	s->len = s->start[t->nr_iv];
	return s->len > 0 ? 0 : KM_ERR_INVALID;
}

/* A pre-copy round of n pages: at the bandwidth, plus its fixed cost. */
static uint64_t sim__round_ns(const struct sim_params *p, double bpp, uint64_t n)
{
	return (uint64_t)llround((double)n * bpp * 1e9 / (double)p->bandwidth) + p->round_ns;
}

static int sim__add_round(struct sim_result *r, const struct sim_round *row)
{
	struct sim_round *n;

	if ((r->nr_round & (r->nr_round - 1)) == 0) {	/* 0, 1, 2, 4, ...: grow */
		if (!(n = realloc(r->round, (r->nr_round ? 2 * r->nr_round : 1) * sizeof(*n))))
			return -ENOMEM;
		r->round = n;
	}
	r->round[r->nr_round++] = *row;
	return 0;
}

int sim__run(const struct dtrace *t, const struct sim_params *p, struct sim_result *out)
{
	struct bitmap cur = { 0 }, next = { 0 }, tmp;
	struct policy_decision d;
	struct policy_state ps = { 0 };
	struct sim_round row;
	double bpp, tau = 0, guest, progress;
	uint64_t n, dur, i, extra = 0;
	unsigned int k;
	struct sim s;
	int r;

	memset(out, 0, sizeof(*out));
	if (!p->bandwidth || !(p->compress >= 1.0))
		return KM_ERR_INVALID;
	if ((r = sim__init(&s, t)) != 0 ||
	    (r = bitmap_init(&cur, t->info.guest_pages)) != 0 ||
	    (r = bitmap_init(&next, t->info.guest_pages)) != 0)
		goto out;
	bpp = (double)t->info.page_size / p->compress + (double)p->page_overhead;
	for (i = 0; i < t->nr_iv; i++)
		out->has_progress |= t->iv[i].has_progress;
	if ((double)p->start_ns >= s.len) {
		r = KM_ERR_INVALID;
		goto out;
	}
	/*
	 * The bulk round begins after the setup, the guest running meanwhile;
	 * its pages: what was written before then.
	 */
	tau = (double)p->start_ns + (double)p->setup_ns;
	if (tau >= s.len) {
		r = KM_ERR_INVALID;
		goto out;
	}
	out->setup_ns = p->setup_ns;
	if (p->bulk_all)
		bitmap_fill(&cur);
	else
		(void)sim__segment(&s, 0, p->start_ns ? tau : s.len, &cur);
	n = bitmap_count(&cur);
	for (;;) {
		ps.dirty = n;
		ps.elapsed_ns = out->precopy_ns;
		policy__decide(&p->policy, &ps, &d);
		ps.throttle_pct = d.throttle_pct;
		if (d.verdict == POLICY_CONTINUE && ps.rounds >= SIM_MAX_ROUNDS) {
			/* Without limits a simulation still ends: as a limit would. */
			d.verdict = POLICY_LIMIT;
			d.copy_anyway = p->policy.force;
		}
		if (d.verdict != POLICY_CONTINUE) {
			out->converged = d.verdict == POLICY_STOP_AND_COPY;
			out->forced = d.verdict == POLICY_LIMIT && d.copy_anyway;
			out->gave_up = d.verdict == POLICY_LIMIT && !d.copy_anyway;
			break;
		}
		dur = sim__round_ns(p, bpp, n);
		/* The guest runs (100 - throttle) % of the round. */
		guest = (double)dur * (double)(100 - ps.throttle_pct) / 100.0;
		bitmap_clear_all(&next);
		progress = sim__window(&s, tau, guest, &next);
		if (ps.rounds == 0 && !p->bulk_all) {
			/*
			 * The bulk round sends what is written when its scan
			 * of memory gets there: pages first written while it
			 * runs go with it if the scan has not passed them, on
			 * average half of them. They are dirty for round 1
			 * either way. Twice: the round grows with them.
			 */
			for (k = 0; k < 2; k++) {
				extra = bitmap_count_andnot(&next, &cur) / 2;
				dur = sim__round_ns(p, bpp, n + extra);
				guest = (double)dur * (double)(100 - ps.throttle_pct) / 100.0;
				bitmap_clear_all(&next);
				progress = sim__window(&s, tau, guest, &next);
			}
			n += extra;
		}
		out->progress += (uint64_t)llround(progress);
		tau = fmod(tau + guest, s.len);
		row = (struct sim_round){
			.start_ns = out->setup_ns + out->precopy_ns, .duration_ns = dur, .pages = n,
			.bytes = (uint64_t)llround((double)n * bpp),
			.throttle_pct = ps.throttle_pct, .expected_ns = d.expected_ns,
			.trace_ns = (uint64_t)llround(guest),
		};
		if ((r = sim__add_round(out, &row)) != 0)
			goto out;
		out->pages += n;
		out->bytes += row.bytes;
		out->precopy_ns += dur;
		/* As mig__end_round: a round lasts at least a nanosecond. */
		ps.round_ns = dur ? dur : 1;
		ps.round_pps = policy__rate(ps.round_pps, n, ps.round_ns);
		ps.rounds++;
		tmp = cur;
		cur = next;
		next = tmp;
		n = bitmap_count(&cur);
	}
	out->rounds = ps.rounds;
	out->throttle_pct = ps.throttle_pct;
	if (!out->gave_up) {
		out->final_pages = n;
		out->downtime_ns = (uint64_t)llround((double)n * bpp * 1e9 / (double)p->bandwidth) +
				   p->switchover_ns;
		out->pages += n;
		out->bytes += (uint64_t)llround((double)n * bpp);
	}
	out->total_ns = out->setup_ns + out->precopy_ns + out->downtime_ns;
	out->progress_unthrottled = (uint64_t)llround(sim__window(&s, (double)p->start_ns +
								  (double)p->setup_ns,
								  (double)out->precopy_ns, NULL));
	r = 0;
out:
	if (r)
		sim__free(out);
	bitmap_free(&cur);
	bitmap_free(&next);
	free(s.start);
	free(s.delta);
	return r;
}

void sim__free(struct sim_result *r)
{
	if (!r)
		return;
	free(r->round);
	r->round = NULL;
	r->nr_round = 0;
}
