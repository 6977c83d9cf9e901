/* Dirty-rate measurement: see dirtyrate.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "bitmap.h"
#include "err.h"
#include "log.h"
#include "kvm/dirty.h"
#include "kvm/dirtyrate.h"
#include "kvm/kvm.h"

struct dr_interval {
	uint64_t end_ms;		/* since the start */
	uint64_t pages;			/* written in it (sample: estimated) */
	uint64_t changed;		/* sample: pages of the sample that changed */
	uint64_t ns;			/* its length, measured */
	uint32_t vcpu[KM_MAX_VCPUS];	/* ring: each vCPU's ring entries in it */
};

/* One measurement at a time per process (one VM per process). */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* CLOCK_MONOTONIC: cancel, interval ends */
	bool inited;
	bool started;			/* a measurement exists (its result is queried) */
	bool joinable;			/* its thread is not joined yet */
	bool running, cancel;
	pthread_t thread;
	struct kvm *kvm;
	struct dirtyrate_params p;
	uint64_t start_wall_ns, start_ns;
	char status[16];		/* measuring, measured, cancelled, failed */
	char error[160];
	struct dr_interval *iv;
	unsigned int n;
	uint64_t *sample;		/* sample mode: page numbers */
	uint64_t *sets;			/* wws: every interval's dirty set, words of nr bits */
	struct dr_wws { uint64_t intervals, windows; double pages; } wws[16];
	unsigned int nwws;
	uint64_t *hash;			/* and their hashes at the interval's start */
} dr = { .lock = PTHREAD_MUTEX_INITIALIZER };

static const char *dr__mode_name(enum dirtyrate_mode m)
{
	return m == DIRTYRATE_SAMPLE ? "sample" : m == DIRTYRATE_RING ? "ring" : "bitmap";
}

/* Waits until deadline (CLOCK_MONOTONIC ns) or a cancel; true if cancelled. Under dr.lock. */
static bool dr__wait(uint64_t deadline)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline / 1000000000ULL),
			       .tv_nsec = (long)(deadline % 1000000000ULL) };

	while (!dr.cancel && kvm__now_ns() < deadline &&
	       dr.kvm->state != KVM_STATE_STOPPED)
		pthread_cond_timedwait(&dr.cond, &dr.lock, &ts);
	return dr.cancel || dr.kvm->state == KVM_STATE_STOPPED;
}

/* A page's hash, read from the memfd (a hole reads as zeros and stays one). */
static uint64_t dr__hash(const struct kvm_memory *mem, uint64_t n)
{
	uint8_t page[KM_PAGE_SIZE];

	if (pread(mem->memfd, page, sizeof(page), (off_t)(n * KM_PAGE_SIZE)) != sizeof(page))
		memset(page, 0, sizeof(page));
	return XXH3_64bits(page, sizeof(page));
}

/* Distinct random pages (Floyd's algorithm over a bitmap), sorted for reading. */
static int dr__pick(uint64_t nr, uint32_t k, uint64_t *out)
{
	struct bitmap b;
	uint64_t seed = kvm__now_ns() | 1, i, j, t;
	uint32_t got = 0;

	if (bitmap_init(&b, nr) != 0)
		return -ENOMEM;
	for (j = nr - k; j < nr; j++) {
		/* xorshift64*: a sample, not a secret */
		seed ^= seed >> 12;
		seed ^= seed << 25;
		seed ^= seed >> 27;
		t = (seed * 0x2545F4914F6CDD1DULL) % (j + 1);
		bitmap_set(&b, bitmap_test(&b, t) ? j : t);
	}
	for (i = bitmap_next_set(&b, 0); i < nr && got < k; i = bitmap_next_set(&b, i + 1))
		out[got++] = i;
	bitmap_free(&b);
	return 0;
}

/* Each vCPU's ring entries since the last call (fetched: the tracker's counts then, updated). */
static void dr__ring_counts(struct kvm *kvm, uint32_t *fetched, uint32_t *out)
{
	uint32_t now[KM_MAX_VCPUS];
	unsigned int i;

	dirty__ring_counts(&kvm->dirty, now);
	for (i = 0; i < KM_MAX_VCPUS; i++) {
		out[i] = now[i] - fetched[i];
		fetched[i] = now[i];
	}
}

/* The WWS curve from the kept interval sets: windows of 1, 2, 4, ... intervals. Under dr.lock. */
static void dr__wws(uint64_t nr)
{
	uint64_t words = BITMAP_WORDS(nr), k, w, i, j, sum;
	struct bitmap u;

	dr.nwws = 0;
	if (bitmap_init(&u, nr) != 0)
		return;
	for (k = 1; k <= dr.n && dr.nwws < 16; k *= 2) {
		for (w = 0, sum = 0; (w + 1) * k <= dr.n; w++) {
			bitmap_clear_all(&u);
			for (i = w * k; i < (w + 1) * k; i++)
				for (j = 0; j < words; j++)
					u.words[j] |= dr.sets[i * words + j];
			sum += bitmap_count(&u);
		}
		dr.wws[dr.nwws++] = (struct dr_wws){ .intervals = k, .windows = w,
						     .pages = (double)sum / (double)w };
	}
	bitmap_free(&u);
}

static void *dr__thread(void *arg)
{
	struct kvm *kvm = arg;
	uint64_t nr = memory__nr_pages(&kvm->mem), t0, end, iv_ns, changed, pages, h, mid;
	uint32_t fetched[KM_MAX_VCPUS] = { 0 }, vcpu[KM_MAX_VCPUS] = { 0 };
	struct bitmap seen = { 0 };
	bool stopped = false;
	int sub = -1;
	uint32_t i;
	int64_t got;

	pthread_setname_np(pthread_self(), "dirty-rate");
	pthread_mutex_lock(&dr.lock);
	iv_ns = dr.p.interval_ms * 1000000ULL;
	end = dr.start_ns + dr.p.duration_ms * 1000000ULL;
	if (dr.p.mode != DIRTYRATE_SAMPLE &&
	    (bitmap_init(&seen, nr) != 0 ||
	     (sub = dirty__subscribe(&kvm->dirty, "dirty-rate", false)) < 0)) {
		snprintf(dr.error, sizeof(dr.error), "dirty tracking: %s",
			 km_strerror(sub < 0 ? sub : -ENOMEM));
		snprintf(dr.status, sizeof(dr.status), "failed");
		goto out;
	}
	if (dr.p.mode == DIRTYRATE_RING) {
		/* The subscriber's first read starts the count: what the rings gave before is not ours. */
		(void)dirty__read(&kvm->dirty, sub, &seen);
		dr__ring_counts(kvm, fetched, vcpu);
	}
	/*
	 * Sample mode hashes the sample once before the first interval and
	 * once at the end of each: each pass compares with the one before, so
	 * every page is watched for exactly an interval, back to back. A pass
	 * takes time; an interval is measured between the passes' midpoints.
	 */
	if (dr.p.mode == DIRTYRATE_SAMPLE) {
		uint64_t a = kvm__now_ns();

		pthread_mutex_unlock(&dr.lock);
		for (i = 0; i < dr.p.sample_pages; i++)
			dr.hash[i] = dr__hash(&kvm->mem, dr.sample[i]);
		pthread_mutex_lock(&dr.lock);
		mid = (a + kvm__now_ns()) / 2;
	} else {
		mid = kvm__now_ns();
	}
	t0 = kvm__now_ns();
	while (dr.n < DIRTYRATE_MAX_INTERVALS && t0 < end) {
		uint64_t until = t0 + iv_ns < end ? t0 + iv_ns : end, a, prev = mid;

		stopped = dr__wait(until);
		pthread_mutex_unlock(&dr.lock);
		a = kvm__now_ns();
		if (dr.p.mode != DIRTYRATE_SAMPLE) {
			got = dirty__read(&kvm->dirty, sub, &seen);
			pages = got > 0 ? (uint64_t)got : 0;
			changed = 0;
			mid = kvm__now_ns();
			if (dr.p.mode == DIRTYRATE_RING)
				dr__ring_counts(kvm, fetched, vcpu);
		} else {
			for (i = 0, changed = 0; i < dr.p.sample_pages; i++) {
				h = dr__hash(&kvm->mem, dr.sample[i]);
				changed += h != dr.hash[i];
				dr.hash[i] = h;
			}
			pages = (uint64_t)((double)changed * (double)nr / dr.p.sample_pages + 0.5);
			mid = (a + kvm__now_ns()) / 2;
		}
		pthread_mutex_lock(&dr.lock);
		if (stopped)
			break;
		if (dr.sets)
			memcpy(dr.sets + (uint64_t)dr.n * BITMAP_WORDS(nr), seen.words,
			       BITMAP_WORDS(nr) * 8);
		dr.iv[dr.n] = (struct dr_interval){
			.end_ms = (kvm__now_ns() - dr.start_ns) / 1000000ULL, .pages = pages,
			.changed = changed, .ns = mid - prev,
		};
		memcpy(dr.iv[dr.n++].vcpu, vcpu, sizeof(vcpu));
		t0 = until;
	}
	if (dr.sets)
		dr__wws(nr);
	snprintf(dr.status, sizeof(dr.status), "%s", dr.cancel ? "cancelled" :
		 stopped ? "failed" : "measured");
	if (stopped && !dr.cancel)
		snprintf(dr.error, sizeof(dr.error), "the VM stopped during the measurement");
out:
	dr.running = false;
	pthread_mutex_unlock(&dr.lock);
	if (sub >= 0)
		dirty__unsubscribe(&kvm->dirty, sub);
	bitmap_free(&seen);
	return NULL;
}

int dirtyrate__start(struct kvm *kvm, const struct dirtyrate_params *p, char *err,
		     size_t errlen)
{
	uint64_t nr = memory__nr_pages(&kvm->mem);
	pthread_condattr_t ca;
	int r = 0;

	pthread_mutex_lock(&dr.lock);
	if (!dr.inited) {
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&dr.cond, &ca);
		pthread_condattr_destroy(&ca);
		dr.inited = true;
	}
	if (dr.running) {
		r = KM_ERR_STATE;
		snprintf(err, errlen, "a measurement is running (query-dirty-rate; "
			 "cancel-dirty-rate to stop it)");
		goto out;
	}
	if (dr.joinable) {
		/* It has ended (not running): joining takes no time. */
		pthread_join(dr.thread, NULL);
		dr.joinable = false;
	}
	if (p->mode == DIRTYRATE_RING && kvm->dirty.backend != DIRTY_RING) {
		r = KM_ERR_STATE;
		snprintf(err, errlen, "mode ring needs the dirty-ring backend (kvm-run --dirty-log "
			 "ring); this VM uses %s", dirty__backend_name(kvm->dirty.backend));
		goto out;
	}
	if (p->mode != DIRTYRATE_SAMPLE && kvm->dirty.mode == DIRTY_LOG_OFF) {
		r = KM_ERR_STATE;
		snprintf(err, errlen, "dirty logging is off (dirty-log mode): use mode sample");
		goto out;
	}
	free(dr.iv);
	free(dr.sample);
	free(dr.hash);
	free(dr.sets);
	dr.iv = NULL;
	dr.sample = dr.hash = dr.sets = NULL;
	dr.nwws = 0;
	dr.p = *p;
	if (p->wws) {
		uint64_t n = p->duration_ms / p->interval_ms + 1;

		if (p->mode == DIRTYRATE_SAMPLE || n > DIRTYRATE_MAX_INTERVALS ||
		    n * BITMAP_WORDS(nr) * 8 > DIRTYRATE_WWS_BYTES) {
			r = KM_ERR_INVALID;
			snprintf(err, errlen, "wws: bitmap mode only, and at most %llu MiB of "
				 "interval sets (%llu intervals of %llu KiB here)",
				 DIRTYRATE_WWS_BYTES >> 20, (unsigned long long)n,
				 (unsigned long long)(BITMAP_WORDS(nr) * 8 / 1024));
			goto out;
		}
		if (!(dr.sets = calloc(n, BITMAP_WORDS(nr) * 8))) {
			r = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	}
	if (dr.p.mode == DIRTYRATE_SAMPLE && dr.p.sample_pages > nr)
		dr.p.sample_pages = (uint32_t)nr;
	if (!(dr.iv = calloc(DIRTYRATE_MAX_INTERVALS, sizeof(*dr.iv))) ||
	    (dr.p.mode == DIRTYRATE_SAMPLE &&
	     (!(dr.sample = calloc(dr.p.sample_pages, sizeof(*dr.sample))) ||
	      !(dr.hash = calloc(dr.p.sample_pages, sizeof(*dr.hash))) ||
	      dr__pick(nr, dr.p.sample_pages, dr.sample) != 0))) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	dr.kvm = kvm;
	dr.n = 0;
	dr.cancel = false;
	dr.error[0] = '\0';
	snprintf(dr.status, sizeof(dr.status), "measuring");
	dr.start_wall_ns = kvm__wall_ns();
	dr.start_ns = kvm__now_ns();
	dr.running = true;
	if ((r = -pthread_create(&dr.thread, NULL, dr__thread, kvm)) != 0) {
		dr.running = false;
		snprintf(err, errlen, "thread: %s", km_strerror(r));
		goto out;
	}
	dr.started = dr.joinable = true;
out:
	pthread_mutex_unlock(&dr.lock);
	return r;
}

json_t *dirtyrate__query(struct kvm *kvm)
{
	json_t *o = NULL, *a;
	uint64_t total = 0, ns = 0, max = 0;
	double rate;
	unsigned int i;

	pthread_mutex_lock(&dr.lock);
	if (!dr.started || dr.kvm != kvm)
		goto out;
	a = json_array();
	for (i = 0; a && i < dr.n; i++) {
		const struct dr_interval *v = &dr.iv[i];

		rate = v->ns ? (double)v->pages * 1e9 / (double)v->ns : 0.0;
		total += v->pages;
		ns += v->ns;
		if (v->pages > max)
			max = v->pages;
		json_array_append_new(a, json_pack("{s:I, s:I, s:f, s:f}", "end-ms",
			(json_int_t)v->end_ms, "pages", (json_int_t)v->pages,
			"pages-per-second", rate, "mb-per-second", rate * KM_PAGE_SIZE / 1e6));
		if (dr.p.mode == DIRTYRATE_SAMPLE)
			json_object_set_new(json_array_get(a, i), "sample-changed",
					    json_integer((json_int_t)v->changed));
		if (dr.p.mode == DIRTYRATE_RING) {
			json_t *pv = json_array();
			unsigned int k;

			for (k = 0; pv && k < dr.kvm->nr_cpus; k++)
				json_array_append_new(pv, json_integer(v->vcpu[k]));
			json_object_set_new(json_array_get(a, i), "vcpu-pages", pv);
		}
	}
	rate = ns ? (double)total * 1e9 / (double)ns : 0.0;
	o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:o}",
		      "status", dr.status, "mode", dr__mode_name(dr.p.mode),
		      "start-time-ns", (json_int_t)dr.start_wall_ns,
		      "duration-ms", (json_int_t)dr.p.duration_ms,
		      "interval-ms", (json_int_t)dr.p.interval_ms,
		      "intervals", (json_int_t)dr.n,
		      "pages-per-second", rate, "mb-per-second", rate * KM_PAGE_SIZE / 1e6,
		      "max-interval-pages", (json_int_t)max, "series", a);
	if (o && dr.p.mode == DIRTYRATE_SAMPLE)
		json_object_set_new(o, "sample-pages", json_integer(dr.p.sample_pages));
	if (o && dr.p.mode == DIRTYRATE_RING) {
		json_t *pv = json_array();
		unsigned int k, j;

		for (k = 0; pv && k < dr.kvm->nr_cpus; k++) {
			uint64_t sum = 0;

			for (j = 0; j < dr.n; j++)
				sum += dr.iv[j].vcpu[k];
			json_array_append_new(pv, json_real(ns ? (double)sum * 1e9 / (double)ns : 0.0));
		}
		json_object_set_new(o, "vcpu-pages-per-second", pv);
	}
	if (o && dr.error[0])
		json_object_set_new(o, "error", json_string(dr.error));
	if (o && dr.p.wws) {
		json_t *w = json_array();

		for (i = 0; w && i < dr.nwws; i++)
			json_array_append_new(w, json_pack("{s:I, s:I, s:f, s:f}", "window-ms",
				(json_int_t)(dr.wws[i].intervals * dr.p.interval_ms), "windows",
				(json_int_t)dr.wws[i].windows, "pages", dr.wws[i].pages,
				"mb", dr.wws[i].pages * KM_PAGE_SIZE / 1e6));
		json_object_set_new(o, "wws", w);
	}
out:
	pthread_mutex_unlock(&dr.lock);
	return o;
}

/* Cancels a running measurement and joins its thread; the result stays. */
static bool dr__cancel(struct kvm *kvm)
{
	bool join, was_running;

	pthread_mutex_lock(&dr.lock);
	join = dr.joinable && dr.kvm == kvm;
	was_running = dr.running;
	if (join) {
		dr.cancel = true;
		pthread_cond_broadcast(&dr.cond);
		dr.joinable = false;
	}
	pthread_mutex_unlock(&dr.lock);
	if (join)
		pthread_join(dr.thread, NULL);
	return join && was_running;
}

bool dirtyrate__cancel(struct kvm *kvm)
{
	return dr__cancel(kvm);
}

void dirtyrate__stop(struct kvm *kvm)
{
	dr__cancel(kvm);
	pthread_mutex_lock(&dr.lock);
	if (dr.kvm == kvm) {
		dr.started = false;
		dr.kvm = NULL;
	}
	pthread_mutex_unlock(&dr.lock);
}
