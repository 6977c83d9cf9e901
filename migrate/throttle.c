/*
 * Auto-converge: slows the guest down so that a migration whose dirty
 * rate outruns the link can finish. A thread pauses every vCPU for pct% of
 * each THROTTLE_PERIOD and lets them run the rest (QEMU sleeps inside each
 * vCPU thread instead; pausing from outside keeps the vCPU loop untouched
 * and costs one kick per period, which is nothing at this period).
 * The throttle is released before the stop-and-copy pause and when the
 * migration ends.
 */
#define _GNU_SOURCE
#include <time.h>

#include "log.h"
#include "kvm/kvm.h"
#include "migrate/mig.h"

#define THROTTLE_PERIOD_NS	20000000ULL	/* 20 ms */

static void throttle__sleep(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ULL),
			       .tv_nsec = (long)(ns % 1000000000ULL) };

	while (nanosleep(&ts, &ts) != 0)
		;
}

static void *throttle__thread(void *arg)
{
	struct mig *m = arg;
	unsigned int pct;

	pthread_setname_np(pthread_self(), "throttle");
	while (!atomic_load(&m->throttle_stop)) {
		pct = atomic_load(&m->throttle_pct);
		if (pct == 0 || kvm__pause(m->kvm) != 0) {
			throttle__sleep(THROTTLE_PERIOD_NS);
			continue;
		}
		throttle__sleep(THROTTLE_PERIOD_NS * pct / 100);
		kvm__resume(m->kvm);
		throttle__sleep(THROTTLE_PERIOD_NS * (100 - pct) / 100);
	}
	return NULL;
}

void throttle__set(struct mig *m, unsigned int pct)
{
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
	atomic_store(&m->throttle_stop, 1);
	pthread_join(m->throttle_thread, NULL);
	m->throttle_started = false;
}
