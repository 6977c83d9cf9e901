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

/* A page first written during the bulk round: when, in guest time from its start. */
struct sim_first {
	uint64_t page;
	double t;
};

struct sim_firsts {
	struct sim_first *v;
	size_t n, cap;
};

static int sim__first_cmp(const void *a, const void *b)
{
	const struct sim_first *x = a, *y = b;

	if (x->page != y->page)
		return x->page < y->page ? -1 : 1;
	return x->t < y->t ? -1 : x->t > y->t;
}

/*
 * The pages not in cur written in trace time [a, b), each at its phase of
 * its interval (as sim__add_part takes it), with that time less a plus
 * off: appended to f.
 */
static int sim__firsts_in(const struct sim *s, double a, double b, double off,
			  const struct bitmap *cur, struct sim_firsts *f)
{
	const struct dtrace_interval *iv;
	const struct dtrace_run *r;
	struct sim_first *n;
	double st, en, t;
	uint64_t i, k, p;

	for (i = 0; i < s->t->nr_iv; i++) {
		st = s->start[i];
		en = s->start[i + 1];
		if (en < a || st >= b)
			continue;
		iv = &s->t->iv[i];
		for (k = 0; k < iv->nr_runs; k++) {
			r = &s->t->runs[iv->first_run + k];
			for (p = r->start; p < r->start + r->len; p++) {
				t = st + sim__phase(p) * (en - st);
				if (t < a || t >= b || bitmap_test(cur, p))
					continue;
				if (f->n == f->cap) {
					f->cap = f->cap ? 2 * f->cap : 1024;
					if (!(n = realloc(f->v, f->cap * sizeof(*n))))
						return -ENOMEM;
					f->v = n;
				}
				f->v[f->n++] = (struct sim_first){ .page = p, .t = t - a + off };
			}
		}
	}
	return 0;
}

/*
 * The pages not in cur first written in guest time [0, dt) from trace
 * time tau, sorted by page, each once with its first time. Past the
 * trace's end it starts over; a page's first write is in its first pass.
 */
static int sim__firsts(const struct sim *s, double tau, double dt, const struct bitmap *cur,
		       struct sim_firsts *f)
{
	size_t i, j;
	int r;

	f->n = 0;
	if ((r = sim__firsts_in(s, tau, fmin(s->len, tau + dt), 0, cur, f)) != 0)
		return r;
	if (tau + dt > s->len &&
	    (r = sim__firsts_in(s, 0, fmin(tau, tau + dt - s->len), s->len - tau, cur, f)) != 0)
		return r;
	if (!f->n)
		return 0;
	qsort(f->v, f->n, sizeof(*f->v), sim__first_cmp);
	for (i = 1, j = 0; i < f->n; i++)
		if (f->v[i].page != f->v[j].page)
			f->v[++j] = f->v[i];
	f->n = j + 1;
	return 0;
}

/*
 * The bulk round as the engine runs it: its fixed cost, then a scan of
 * memory in page order that sends the pages of cur and every page first
 * written before the scan gets to it (a hole until then: skipped at no
 * cost). Each page sent costs ns_per_page of the link. The scan reads a
 * batch of per_batch pages at once, when the batch before it leaves (the
 * pacer lets a batch go when it is due and the encoder fills the next
 * meanwhile): batch k is read k batches' time into the round. The guest
 * runs share of the time. Returns the pages sent.
 */
static uint64_t sim__bulk_scan(const struct bitmap *cur, const struct sim_firsts *f,
			       double fixed_ns, double ns_per_page, uint64_t per_batch, double share)
{
	uint64_t p = bitmap_next_set(cur, 0), sent = 0;
	size_t j = 0;
	double read;

	while (p < cur->nbits || j < f->n) {
		if (j < f->n && (p >= cur->nbits || f->v[j].page < p)) {
			/* Written by the time the scan reads it (guest time to wall time)? */
			read = fixed_ns + (double)(sent / per_batch * per_batch) * ns_per_page;
			if (share > 0 && f->v[j].t / share <= read)
				sent++;
			j++;
			continue;
		}
		sent++;
		p = bitmap_next_set(cur, p + 1);
	}
	return sent;
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

/* Pre-copy round k of n pages: at the bandwidth, plus its fixed cost. */
static uint64_t sim__round_ns(const struct sim_params *p, double bpp, unsigned int k, uint64_t n)
{
	return (uint64_t)llround((double)n * bpp * 1e9 / (double)p->bandwidth) +
	       (k == 0 ? p->bulk_ns : p->round_ns);
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
	struct sim_firsts firsts = { 0 };
	struct policy_decision d;
	struct policy_state ps = { 0 };
	struct sim_round row;
	double bpp, tau = 0, guest, progress, share, win;
	uint64_t n, dur, i, per_batch;
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
	per_batch = p->batch_bytes > bpp ? (uint64_t)((double)p->batch_bytes / bpp) : 1;
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
		/* The guest runs (100 - throttle) % of the round. */
		share = (double)(100 - ps.throttle_pct) / 100.0;
		dur = sim__round_ns(p, bpp, ps.rounds, n);
		if (ps.rounds == 0 && !p->bulk_all) {
			/*
			 * The bulk round also sends the pages first written
			 * before its scan gets to them (they are dirty for
			 * round 1 either way). Their times are needed over
			 * the whole round: a window of twice the guess, longer
			 * while the round outgrows it.
			 */
			for (win = 2.0 * (double)dur * share;; win *= 2.0) {
				if ((r = sim__firsts(&s, tau, win, &cur, &firsts)) != 0)
					goto out;
				n = sim__bulk_scan(&cur, &firsts, (double)p->bulk_ns,
						   bpp * 1e9 / (double)p->bandwidth, per_batch, share);
				dur = sim__round_ns(p, bpp, 0, n);
				if ((double)dur * share <= win || share <= 0)
					break;
			}
		}
		guest = (double)dur * share;
		bitmap_clear_all(&next);
		progress = sim__window(&s, tau, guest, &next);
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
	free(firsts.v);
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
