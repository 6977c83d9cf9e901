/* The per-vCPU dirty limit: see dirtylimit.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "kvm/dirty.h"
#include "kvm/dirtylimit.h"
#include "kvm/kvm.h"
#include "kvm/kvm-cpu.h"

struct dl_vcpu {
	double limit[DIRTYLIMIT_OWNERS];	/* MB/s; 0: none */
	double run;				/* share of each cycle it runs */
	double rate;				/* MB/s, last period */
	uint64_t woke;				/* kvm__now_ns its last sleep ended */
};

/* One VM per process, so one limiter: the state is a single struct. */
static struct {
	/*
	 * life serializes starting and stopping the thread (a stop joins it
	 * without dl.lock); taken before dl.lock, never by the thread.
	 */
	pthread_mutex_t life;
	pthread_mutex_t lock;		/* everything below */
	pthread_cond_t cond;		/* CLOCK_MONOTONIC: stop, a limit changed */
	bool inited;
	struct kvm *kvm;
	bool running, stop;
	pthread_t thread;
	int sub;			/* keeps dirty logging on */
	struct dl_vcpu v[KM_MAX_VCPUS];
	uint32_t fetched[KM_MAX_VCPUS];	/* ring counts at the last measurement */
	uint64_t measured_ns;
} dl = { .life = PTHREAD_MUTEX_INITIALIZER, .lock = PTHREAD_MUTEX_INITIALIZER, .sub = -1 };

static double dl__limit(const struct dl_vcpu *v)
{
	double l = 0;
	unsigned int o;

	for (o = 0; o < DIRTYLIMIT_OWNERS; o++)
		if (v->limit[o] && (!l || v->limit[o] < l))
			l = v->limit[o];
	return l;
}

static bool dl__any_locked(void)
{
	unsigned int i;

	for (i = 0; dl.kvm && i < dl.kvm->nr_cpus; i++)
		if (dl__limit(&dl.v[i]))
			return true;
	return false;
}

/* Waits until deadline (kvm__now_ns) or a signal of dl.cond. Under dl.lock. */
static void dl__wait(uint64_t deadline)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline / 1000000000ULL),
			       .tv_nsec = (long)(deadline % 1000000000ULL) };

	if (!dl.stop && kvm__now_ns() < deadline)
		pthread_cond_timedwait(&dl.cond, &dl.lock, &ts);
}

/* sqrt(r) for r in 0.5..2 (Newton; no libm for one root). */
static double dl__sqrt(double r)
{
	double y = (1.0 + r) / 2.0;
	int i;

	for (i = 0; i < 6; i++)
		y = 0.5 * (y + r / y);
	return y;
}

/*
 * One period's end: harvest (outside dl.lock: the tracker's lock may wait
 * for a vCPU's ring-full harvest, never the other way round), each vCPU's
 * rate from its ring entries, and its new run share.
 */
static void dl__measure(struct kvm *kvm)
{
	uint32_t now_counts[KM_MAX_VCPUS];
	uint64_t now, dt;
	bool held;
	unsigned int i;

	if (dirty__harvest(&kvm->dirty) != 0)
		log_warn("dirty limit: harvest failed; rates unchanged");
	dirty__ring_counts(&kvm->dirty, now_counts);
	now = kvm__now_ns();
	/* A pause in the period would read as a low rate: such a period does not count. */
	held = atomic_load(&kvm->pause_req) != 0;
	pthread_mutex_lock(&dl.lock);
	dt = now - dl.measured_ns;
	for (i = 0; i < kvm->nr_cpus && dt; i++) {
		struct dl_vcpu *v = &dl.v[i];
		uint32_t n = now_counts[i] - dl.fetched[i];
		double lim = dl__limit(v);
		double run, ratio;

		v->rate = (double)n * KM_PAGE_SIZE / 1e6 / ((double)dt / 1e9);
		if (!lim) {
			v->run = 1.0;
			continue;
		}
		if (held)
			continue;
		/*
		 * Multiplicative: the share that would have given the limit,
		 * had the rate been proportional to the time run; computed on
		 * the share asked for, so what the scaled sleeps leave over
		 * is corrected too. Near the limit (within 2x) only half of
		 * the step, in log terms: one period's count is noisy, and
		 * full steps on noise make the rate swing around the limit.
		 * Loosened by at most 2x a period: a quiet period (the guest
		 * waiting) does not release a writer at once.
		 */
		ratio = v->rate > 0 ? lim / v->rate : 2.0;
		if (ratio >= 0.5 && ratio <= 2.0)
			ratio = dl__sqrt(ratio);
		run = v->run * ratio;
		if (run > 2.0 * v->run)
			run = 2.0 * v->run;
		if (run > 1.0)
			run = 1.0;
		if (run < DIRTYLIMIT_RUN_MIN)
			run = DIRTYLIMIT_RUN_MIN;
		v->run = run;
	}
	memcpy(dl.fetched, now_counts, sizeof(dl.fetched));
	dl.measured_ns = now;
	pthread_mutex_unlock(&dl.lock);
}

/*
 * Kicks every limited vCPU that has run its share of a cycle since it last
 * woke, asking it to sleep for what makes the share: the time it really
 * ran (a late wake-up of this thread, or a kick's latency, lets it run
 * longer than its share) times (1 - share) / share, at most
 * DIRTYLIMIT_SLEEP_MAX_NS. Returns when the next kick is due. Under dl.lock.
 */
static uint64_t dl__kick_due(struct kvm *kvm, uint64_t now, uint64_t wake)
{
	bool runs = !atomic_load(&kvm->pause_req) && !atomic_load(&kvm->stop_req);
	unsigned int i;

	for (i = 0; i < kvm->nr_cpus; i++) {
		struct dl_vcpu *v = &dl.v[i];
		struct kvm_cpu *cpu = kvm->cpus[i];
		uint64_t kick_at, sleep;

		if (!dl__limit(v) || v->run >= 1.0 || !runs || !cpu->thread_started ||
		    cpu->finished) {
			v->woke = now;
			continue;
		}
		kick_at = v->woke + (uint64_t)(v->run * (double)DIRTYLIMIT_CYCLE_NS);
		if (now >= kick_at) {
			sleep = (uint64_t)((double)(now - v->woke) * (1.0 - v->run) / v->run);
			if (sleep > DIRTYLIMIT_SLEEP_MAX_NS)
				sleep = DIRTYLIMIT_SLEEP_MAX_NS;
			atomic_store(&cpu->dl_sleep_until, now + sleep);
			kvm_cpu__kick(cpu);
			v->woke = now + sleep;
			kick_at = v->woke + (uint64_t)(v->run * (double)DIRTYLIMIT_CYCLE_NS);
		}
		if (kick_at < wake)
			wake = kick_at;
	}
	return wake;
}

static void *dl__thread(void *arg)
{
	struct kvm *kvm = arg;
	uint64_t next, now;

	pthread_setname_np(pthread_self(), "dirty-limit");
	pthread_mutex_lock(&dl.lock);
	/* The first period is short: a writer runs free until it ends. */
	next = kvm__now_ns() + DIRTYLIMIT_FIRST_NS;
	while (!dl.stop) {
		now = kvm__now_ns();
		if (now >= next) {
			pthread_mutex_unlock(&dl.lock);
			dl__measure(kvm);
			pthread_mutex_lock(&dl.lock);
			next += DIRTYLIMIT_PERIOD_NS;
			if (next <= now)
				next = now + DIRTYLIMIT_PERIOD_NS;
			continue;
		}
		dl__wait(dl__kick_due(kvm, now, next));
	}
	pthread_mutex_unlock(&dl.lock);
	return NULL;
}

static void dl__init(void)
{
	pthread_condattr_t ca;

	if (dl.inited)
		return;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&dl.cond, &ca);
	pthread_condattr_destroy(&ca);
	dl.inited = true;
}

/* Starts measuring and the thread. Under dl.life and dl.lock. */
static int dl__start_locked(struct kvm *kvm)
{
	unsigned int i;
	int r;

	if (dl.running)
		return 0;
	if ((dl.sub = dirty__subscribe(&kvm->dirty, "dirty-limit", false)) < 0) {
		r = dl.sub;
		dl.sub = -1;
		return r;
	}
	dirty__ring_counts(&kvm->dirty, dl.fetched);
	dl.measured_ns = kvm__now_ns();
	for (i = 0; i < KM_MAX_VCPUS; i++) {
		dl.v[i].run = 1.0;
		dl.v[i].rate = 0;
		dl.v[i].woke = dl.measured_ns;
	}
	dl.stop = false;
	if ((r = pthread_create(&dl.thread, NULL, dl__thread, kvm)) != 0) {
		dirty__unsubscribe(&kvm->dirty, dl.sub);
		dl.sub = -1;
		return -r;
	}
	dl.running = true;
	return 0;
}

/* Stops the thread and the measuring. Under dl.life and dl.lock (given back meanwhile). */
static void dl__stop_locked(void)
{
	pthread_t t = dl.thread;
	struct kvm *kvm = dl.kvm;
	unsigned int i;

	if (!dl.running)
		return;
	dl.stop = true;
	pthread_cond_broadcast(&dl.cond);
	pthread_mutex_unlock(&dl.lock);
	pthread_join(t, NULL);
	pthread_mutex_lock(&dl.lock);
	dl.running = false;
	if (dl.sub >= 0)
		dirty__unsubscribe(&kvm->dirty, dl.sub);
	dl.sub = -1;
	/* A sleep asked for and not yet begun is dropped. */
	for (i = 0; i < kvm->nr_cpus; i++)
		atomic_store(&kvm->cpus[i]->dl_sleep_until, 0);
}

int dirtylimit__set(struct kvm *kvm, enum dirtylimit_owner owner, int cpu, double mbps,
		    char *err, size_t errlen)
{
	unsigned int i;
	int r;

	if (kvm->dirty.backend != DIRTY_RING) {
		snprintf(err, errlen, "the dirty limit needs the dirty-ring backend "
			 "(kvm-run --dirty-log ring); this VM uses %s",
			 dirty__backend_name(kvm->dirty.backend));
		return KM_ERR_UNSUPPORTED;
	}
	if (kvm->dirty.mode == DIRTY_LOG_OFF) {
		snprintf(err, errlen, "dirty logging is held off (dirty-log mode off)");
		return KM_ERR_STATE;
	}
	if (cpu < -1 || cpu >= (int)kvm->nr_cpus) {
		snprintf(err, errlen, "cpu-index %d: this VM has vCPUs 0 to %u", cpu,
			 kvm->nr_cpus - 1);
		return KM_ERR_INVALID;
	}
	if (!(mbps >= DIRTYLIMIT_MIN_MBPS && mbps <= DIRTYLIMIT_MAX_MBPS)) {
		snprintf(err, errlen, "dirty-rate %g: need %g to %g MB/s", mbps,
			 DIRTYLIMIT_MIN_MBPS, DIRTYLIMIT_MAX_MBPS);
		return KM_ERR_INVALID;
	}
	pthread_mutex_lock(&dl.life);
	pthread_mutex_lock(&dl.lock);
	dl__init();
	if (dl.kvm && dl.kvm != kvm) {
		snprintf(err, errlen, "another VM in this process has dirty limits");
		r = KM_ERR_STATE;
		goto out;
	}
	dl.kvm = kvm;
	if ((r = dl__start_locked(kvm)) != 0) {
		snprintf(err, errlen, "dirty tracking: %s", km_strerror(r));
		goto out;
	}
	for (i = 0; i < kvm->nr_cpus; i++)
		if (cpu == -1 || (int)i == cpu)
			dl.v[i].limit[owner] = mbps;
	pthread_cond_broadcast(&dl.cond);
	if (cpu == -1)
		log_info("dirty limit: every vCPU at most %g MB/s (%s)", mbps,
			 owner == DIRTYLIMIT_USER ? "user" : "migration");
	else
		log_info("dirty limit: vCPU %d at most %g MB/s (%s)", cpu, mbps,
			 owner == DIRTYLIMIT_USER ? "user" : "migration");
out:
	pthread_mutex_unlock(&dl.lock);
	pthread_mutex_unlock(&dl.life);
	return r;
}

int dirtylimit__cancel(struct kvm *kvm, enum dirtylimit_owner owner, int cpu)
{
	unsigned int i;

	if (cpu < -1 || cpu >= (int)kvm->nr_cpus)
		return KM_ERR_INVALID;
	pthread_mutex_lock(&dl.life);
	pthread_mutex_lock(&dl.lock);
	if (dl.kvm == kvm) {
		for (i = 0; i < kvm->nr_cpus; i++) {
			if (cpu != -1 && (int)i != cpu)
				continue;
			dl.v[i].limit[owner] = 0;
			if (!dl__limit(&dl.v[i]))
				dl.v[i].run = 1.0;
		}
		if (!dl__any_locked())
			dl__stop_locked();
		pthread_cond_broadcast(&dl.cond);
	}
	pthread_mutex_unlock(&dl.lock);
	pthread_mutex_unlock(&dl.life);
	return 0;
}

unsigned int dirtylimit__query(struct kvm *kvm, struct dirtylimit_info *out, unsigned int max)
{
	unsigned int i, n = 0;

	pthread_mutex_lock(&dl.lock);
	for (i = 0; i < kvm->nr_cpus && n < max; i++) {
		const struct dl_vcpu *v = &dl.v[i];
		struct dirtylimit_info *o = &out[n++];
		bool mine = dl.kvm == kvm;

		memset(o, 0, sizeof(*o));
		o->cpu = i;
		o->run_share = 1.0;
		o->slept_ns = atomic_load(&kvm->cpus[i]->dl_slept_ns);
		if (!mine)
			continue;
		o->limit_mbps = dl__limit(v);
		memcpy(o->owner_mbps, v->limit, sizeof(o->owner_mbps));
		o->current_mbps = dl.running ? v->rate : 0;
		o->run_share = o->limit_mbps ? v->run : 1.0;
	}
	pthread_mutex_unlock(&dl.lock);
	return n;
}

void dirtylimit__vcpu_sleep(struct kvm_cpu *cpu)
{
	struct kvm *kvm = cpu->kvm;
	uint64_t until = atomic_exchange(&cpu->dl_sleep_until, 0), start = kvm__now_ns();
	struct timespec ts;

	if (until <= start)
		return;
	ts.tv_sec = (time_t)(until / 1000000000ULL);
	ts.tv_nsec = (long)(until % 1000000000ULL);
	/* As ioport.c's KM_HC_SLEEP: a pause or stop wakes it (kvm__kick_all broadcasts). */
	pthread_mutex_lock(&kvm->lock);
	while (!atomic_load(&kvm->pause_req) && !atomic_load(&kvm->stop_req) &&
	       kvm__now_ns() < until)
		pthread_cond_timedwait(&kvm->cond, &kvm->lock, &ts);
	pthread_mutex_unlock(&kvm->lock);
	/*
	 * Cut short by a pause (the CPU throttle's, say): the rest of the
	 * sleep follows it, unless the limiter asked for another meanwhile.
	 */
	if (!atomic_load(&kvm->stop_req) && kvm__now_ns() < until) {
		uint_fast64_t none = 0;

		atomic_compare_exchange_strong(&cpu->dl_sleep_until, &none, until);
	}
	atomic_fetch_add(&cpu->dl_slept_ns, kvm__now_ns() - start);
}

void dirtylimit__stop(struct kvm *kvm)
{
	pthread_mutex_lock(&dl.life);
	pthread_mutex_lock(&dl.lock);
	if (dl.kvm == kvm) {
		dl__stop_locked();
		memset(dl.v, 0, sizeof(dl.v));
		dl.kvm = NULL;
	}
	pthread_mutex_unlock(&dl.lock);
	pthread_mutex_unlock(&dl.life);
}
