/*
 * The CPU throttle (throttle.h): a migration's auto-converge, and a
 * checkpoint whose pre-copy the guest outruns. QEMU sleeps inside each
 * vCPU thread; here a thread pauses all vCPUs from outside (a hold of
 * the user's own bit), which keeps the vCPU loop untouched, and which a
 * user's stop or the copy's own pause outlasts. A long slice keeps the cost of pausing
 * (a kick per vCPU) small against the time the guest runs, so 99 % really
 * leaves the guest about 1 % of its time.
 * The throttle is lifted (and its thread woken at once) before the
 * copy's own pause and when the copy ends.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <time.h>

#include "log.h"
#include "kvm/kvm.h"
#include "kvm/throttle.h"

#define THROTTLE_SLICE_NS	10000000ULL	/* 10 ms of running */

/* Waits ns, or less if the throttle is being stopped. */
static void throttle__wait(struct kvm_throttle *t, uint64_t ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ns += (uint64_t)ts.tv_nsec;
	ts.tv_sec += (time_t)(ns / 1000000000ULL);
	ts.tv_nsec = (long)(ns % 1000000000ULL);
	pthread_mutex_lock(&t->lock);
	while (!atomic_load(&t->stop) &&
	       pthread_cond_timedwait(&t->cond, &t->lock, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&t->lock);
}

static void *throttle__thread(void *arg)
{
	struct kvm_throttle *t = arg;
	unsigned int pct;

	pthread_setname_np(pthread_self(), "throttle");
	while (!atomic_load(&t->stop)) {
		pct = atomic_load(&t->pct);
		if (pct == 0 || kvm__hold(t->kvm, t->hold) != 0) {
			throttle__wait(t, THROTTLE_SLICE_NS);
			continue;
		}
		throttle__wait(t, THROTTLE_SLICE_NS * pct / (100 - pct));
		kvm__release(t->kvm, t->hold);
		throttle__wait(t, THROTTLE_SLICE_NS);
	}
	return NULL;
}

void throttle__init(struct kvm_throttle *t, struct kvm *kvm, unsigned int hold)
{
	t->kvm = kvm;
	t->hold = hold;
	atomic_store(&t->pct, 0);
	atomic_store(&t->stop, 0);
	t->started = false;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
}

void throttle__set(struct kvm_throttle *t, unsigned int pct)
{
	if (pct > 99)
		pct = 99;
	atomic_store(&t->pct, pct);
	if (t->started || pct == 0)
		return;
	atomic_store(&t->stop, 0);
	if (pthread_create(&t->thread, NULL, throttle__thread, t) != 0) {
		log_warn("throttle: cannot start its thread");
		return;
	}
	t->started = true;
}

void throttle__stop(struct kvm_throttle *t)
{
	if (!t->started)
		return;
	pthread_mutex_lock(&t->lock);
	atomic_store(&t->stop, 1);
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	t->started = false;
}
