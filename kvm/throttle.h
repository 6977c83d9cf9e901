/*
 * A CPU throttle: slows the guest down so that a copy racing its writes
 * (a migration's pre-copy, a checkpoint's) can finish. As QEMU's CPU
 * throttle: the vCPUs run for a slice of THROTTLE_SLICE_NS, then are
 * paused for pct / (100 - pct) slices (20 %: 2.5 ms, 99 %: 990 ms).
 */
#ifndef KM_THROTTLE_H
#define KM_THROTTLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct kvm;

struct kvm_throttle {
	struct kvm *kvm;
	unsigned int hold;		/* the enum kvm_hold bit it pauses with */
	atomic_uint pct;		/* 0: off */
	atomic_int stop;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

/* Off, for kvm, pausing it with hold (each user its own bit). */
void throttle__init(struct kvm_throttle *t, struct kvm *kvm, unsigned int hold);
/* Sets the share of time the vCPUs are paused (at most 99 %); starts the thread. */
void throttle__set(struct kvm_throttle *t, unsigned int pct);
static inline unsigned int throttle__pct(struct kvm_throttle *t)
{
	return atomic_load(&t->pct);
}
/* Lifts it at once (its thread woken and joined); the pct is kept for reports. */
void throttle__stop(struct kvm_throttle *t);

#endif
