/*
 * The per-vCPU dirty limit (as QEMU's dirty-limit): caps the rate at which
 * one vCPU dirties memory, slowing that vCPU alone, where the CPU throttle
 * (throttle.h) pauses every vCPU alike. A vCPU that writes little memory
 * (a computing one) runs on at full speed.
 *
 * How (dirty-ring backend only, kvm-run --dirty-log ring):
 *   - measure: a thread harvests the rings every DIRTYLIMIT_PERIOD_NS
 *     (dirty__harvest: the tracker's one harvest loop) and takes each
 *     vCPU's dirty rate from its ring's entry count (dirty__ring_counts);
 *   - decide: each limited vCPU has a run share s of every
 *     DIRTYLIMIT_CYCLE_NS; after each period s becomes s * limit / rate
 *     (the square root of that ratio when it is within 2x: one period's
 *     count is noisy), so a vCPU over its limit runs less and one under it
 *     more (at most twice as much per period, up to all the time);
 *   - act: when a vCPU has run its share of a cycle, the thread kicks it
 *     and the vCPU's own thread sleeps (dirtylimit__vcpu_sleep, from the
 *     run loop) for the rest of the cycle, scaled to the time it really
 *     ran: a kick that lands late (milliseconds in an emulated sandbox)
 *     lengthens the sleep, so the share holds down to DIRTYLIMIT_RUN_MIN.
 *     At most DIRTYLIMIT_SLEEP_MAX_NS. The sleep ends early when the VM
 *     stops or pauses (and goes on after a pause).
 * QEMU sleeps on each dirty-ring-full exit instead, which ties the
 * granularity to the ring's size; a timed cycle works with any ring.
 *
 * Limits come from two owners, each setting and cancelling only its own:
 * the user (set-vcpu-dirty-limit) and a migration (kvm-migrate
 * --dirty-limit); a vCPU obeys the lower of the two. Rates are MB/s
 * (10^6 bytes, of 4 KiB pages), as dirtyrate.h's.
 */
#ifndef KM_DIRTYLIMIT_H
#define KM_DIRTYLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvm;
struct kvm_cpu;

#define DIRTYLIMIT_PERIOD_NS	500000000ULL	/* a measurement and decision */
#define DIRTYLIMIT_FIRST_NS	50000000ULL	/* the first, after the thread starts */
#define DIRTYLIMIT_CYCLE_NS	20000000ULL	/* run share, then sleep */
#define DIRTYLIMIT_SLEEP_MAX_NS	1000000000ULL	/* one sleep at most */
#define DIRTYLIMIT_RUN_MIN	0.002		/* the least share a limited vCPU runs */
#define DIRTYLIMIT_MIN_MBPS	0.01		/* 2.4 pages/s */
#define DIRTYLIMIT_MAX_MBPS	1000000.0	/* 1 TB/s: any larger is a typo */

enum dirtylimit_owner {
	DIRTYLIMIT_USER,	/* set-vcpu-dirty-limit / cancel-vcpu-dirty-limit */
	DIRTYLIMIT_MIGRATION,	/* a migration's --dirty-limit, cancelled at its end */
	DIRTYLIMIT_OWNERS,
};

/* One vCPU as query-vcpu-dirty-limit shows it. */
struct dirtylimit_info {
	unsigned int cpu;
	double limit_mbps;		/* in force: the lower owner's; 0: none */
	double owner_mbps[DIRTYLIMIT_OWNERS];
	double current_mbps;		/* measured over the last period */
	double run_share;		/* of each cycle, 0..1 */
	uint64_t slept_ns;		/* in all, since the first limit */
};

/*
 * Sets owner's limit of cpu (-1: every vCPU) to mbps (DIRTYLIMIT_MIN_MBPS ..
 * DIRTYLIMIT_MAX_MBPS; fractions too, where QEMU takes whole MB/s: a slow
 * link, as an emulated one, needs less than 1 MB/s), starting the thread if needed. Refused, with the
 * reason in err, when the VM does not use the dirty-ring backend, dirty
 * logging is held off, or cpu or mbps is out of range.
 */
int dirtylimit__set(struct kvm *kvm, enum dirtylimit_owner owner, int cpu, double mbps,
		    char *err, size_t errlen);
/*
 * Drops owner's limit of cpu (-1: every vCPU); the thread ends with the
 * last limit. KM_ERR_INVALID for a cpu out of range.
 */
int dirtylimit__cancel(struct kvm *kvm, enum dirtylimit_owner owner, int cpu);
/* Each vCPU's limit and rate into out (at most max); returns how many. */
unsigned int dirtylimit__query(struct kvm *kvm, struct dirtylimit_info *out, unsigned int max);
/* From cpu's run loop after any return from KVM_RUN: the sleep it is asked for. */
void dirtylimit__vcpu_sleep(struct kvm_cpu *cpu);
/* At the VM's end: stops the thread, forgets every limit. */
void dirtylimit__stop(struct kvm *kvm);

#endif
