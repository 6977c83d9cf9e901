/*
 * Auto-converge: slows the guest down so that a migration whose dirty
 * rate outruns the link can finish. As QEMU's CPU throttle: the vCPUs run
 * for a slice of THROTTLE_SLICE_NS, then are paused for pct / (100 - pct)
 * slices (20 %: 2.5 ms, 99 %: 990 ms). QEMU sleeps inside each vCPU
 * thread; here a thread pauses all vCPUs from outside (a KVM_HOLD_THROTTLE
 * hold), which keeps the vCPU loop untouched, and which a user's stop or
 * the migration's own pause outlasts. A long slice keeps the cost of pausing
 * (a kick per vCPU) small against the time the guest runs, so 99 % really
 * leaves the guest about 1 % of its time.
 * The throttle is lifted (and its thread woken at once) before the
 * stop-and-copy pause and when the migration ends.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <time.h>

#include "log.h"
#include "kvm/kvm.h"
#include "migrate/mig.h"

#define THROTTLE_SLICE_NS	10000000ULL	/* 10 ms of running */

static pthread_mutex_t throttle_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t throttle_cond = PTHREAD_COND_INITIALIZER;

/* Waits ns, or less if the throttle is being stopped. */
static void throttle__wait(struct mig *m, uint64_t ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ns += (uint64_t)ts.tv_nsec;
	ts.tv_sec += (time_t)(ns / 1000000000ULL);
	ts.tv_nsec = (long)(ns % 1000000000ULL);
	pthread_mutex_lock(&throttle_lock);
	while (!atomic_load(&m->throttle_stop) &&
	       pthread_cond_timedwait(&throttle_cond, &throttle_lock, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&throttle_lock);
}

static void *throttle__thread(void *arg)
{
	struct mig *m = arg;
	unsigned int pct;

	pthread_setname_np(pthread_self(), "throttle");
	while (!atomic_load(&m->throttle_stop)) {
		pct = atomic_load(&m->throttle_pct);
		if (pct == 0 || kvm__hold(m->kvm, KVM_HOLD_THROTTLE) != 0) {
			throttle__wait(m, THROTTLE_SLICE_NS);
			continue;
		}
		throttle__wait(m, THROTTLE_SLICE_NS * pct / (100 - pct));
		kvm__release(m->kvm, KVM_HOLD_THROTTLE);
		throttle__wait(m, THROTTLE_SLICE_NS);
	}
	return NULL;
}

void throttle__set(struct mig *m, unsigned int pct)
{
	if (pct > 99)
		pct = 99;
	atomic_store(&m->throttle_pct, pct);
	if (m->throttle_started || pct == 0)
		return;
	atomic_store(&m->throttle_stop, 0);
	if (pthread_create(&m->throttle_thread, NULL, throttle__thread, m) != 0) {
		log_warn("auto-converge: cannot start the throttle thread");
		return;
	}
	m->throttle_started = true;
}

void throttle__stop(struct mig *m)
{
	if (!m->throttle_started)
		return;
	pthread_mutex_lock(&throttle_lock);
	atomic_store(&m->throttle_stop, 1);
	pthread_cond_broadcast(&throttle_cond);
	pthread_mutex_unlock(&throttle_lock);
	pthread_join(m->throttle_thread, NULL);
	m->throttle_started = false;
}
