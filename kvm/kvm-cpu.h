/* One vCPU: its KVM fd, its shared kvm_run page, its thread and run loop. */
#ifndef KM_KVM_CPU_H
#define KM_KVM_CPU_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>

struct kvm;

struct kvm_cpu {
	struct kvm *kvm;
	unsigned int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	bool parked;		/* under kvm->lock */
	bool finished;		/* the guest said KM_HC_DONE on this vCPU */
	bool answered_check;	/* under kvm->lock */
	unsigned int cpuid_nent;	/* CPUID entries last given with KVM_SET_CPUID2 */
	/* The dirty limit (dirtylimit.h): sleep until then (kvm__now_ns; 0: no), slept so far. */
	atomic_uint_fast64_t dl_sleep_until;
	atomic_uint_fast64_t dl_slept_ns;
};

/*
 * Creates vCPU id, maps its kvm_run and gives it cpuid (with its own APIC
 * id patched in). *out is owned by the caller (kvm_cpu__destroy).
 */
int kvm_cpu__create(struct kvm *kvm, unsigned int id,
		    const struct kvm_cpuid2 *cpuid, struct kvm_cpu **out);
void kvm_cpu__destroy(struct kvm_cpu *cpu);	/* NULL-safe; thread must be joined */

/* Starts the thread that runs the vCPU until the VM stops. */
int kvm_cpu__start(struct kvm_cpu *cpu);

/* Interrupts KVM_RUN on this vCPU (immediate_exit + signal). */
void kvm_cpu__kick(struct kvm_cpu *cpu);

/* Installs the (empty) kick signal handler; once per process. */
int kvm_cpu__init_signals(void);

struct km_ucall;

/*
 * Runs the vCPU on the calling thread (no vCPU thread may exist) until the
 * guest makes a ucall, handling console and progress hypercalls meanwhile:
 * the selftests-style entry point of tests/lib. Returns 0 and the ucall, or
 * a negative error when the VM stopped (triple fault, guest failure...).
 */
int kvm_cpu__run_until_ucall(struct kvm_cpu *cpu, struct km_ucall *uc);

/*
 * Completes a pending port read or MMIO read by re-entering KVM_RUN once
 * with immediate_exit set, so that the vCPU's registers are final before its
 * state is saved (KVM API: "the operation is complete only after KVM_RUN").
 */
int kvm_cpu__complete_io(struct kvm_cpu *cpu);

/* Registers on stderr for diagnostics after a failure. */
void kvm_cpu__dump(struct kvm_cpu *cpu, const char *why);

#endif
