/*
 * The selftests-style test library: a VM running a guest function in one
 * line, run to a sync point, assert. Guest functions are plain C in the test
 * file; the whole test binary (built -no-pie, so its addresses are fixed) is
 * loaded into guest memory at its link addresses, which the identity map
 * makes valid guest addresses too (as KVM selftests do with kvm_vm_elf_load).
 *
 * Guest code may call only static inline helpers (kvm/guest/hypercall.h)
 * and functions of the test binary that use no libc.
 */
#ifndef KM_KVM_TEST_H
#define KM_KVM_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "kvm/guest/hypercall.h"
#include "kvm/kvm.h"
#include "kvm/kvm-cpu.h"

/*
 * Call first in main() of KVM tests. Where scripts/check found the nested
 * KVM sandbox (KVM_MIGRATE_SANDBOX) and this host has no KVM, or
 * KVM_MIGRATE_FORCE_SANDBOX=1, runs this program in there and exits with
 * its status ("Bail out!" if the sandbox itself fails). Otherwise, when
 * /dev/kvm cannot be opened, prints the TAP plan "1..0 # SKIP reason" and
 * exits 0, so the whole program counts as one skip with its reason (like
 * kselftest's ksft_exit_skip); scripts/check fails on a skipped KVM test.
 */
void kvm_test_require_kvm(void);

/*
 * How much longer than natively a time bound should be here: 1 natively,
 * up to 5 on a machine that moves fewer than 5000 pages/s over TLS
 * (KVM_MIGRATE_PACE, tests/pace.sh; as tests/lib.sh's pace_time).
 * vm_wait_progress applies it.
 */
unsigned int kvm_test_time_factor(void);

/* NULL if /dev/kvm works, else why not (static text). */
const char *kvm_test_unavailable(void);

/*
 * A VM of mem bytes and nr_vcpus vCPUs whose every vCPU starts in
 * guest_code(vcpu_index) at CPL3 (abi.h entry state). Fails the test on error.
 */
struct kvm *vm_create_with_code(uint64_t mem, unsigned int nr_vcpus, bool irqchip,
				void (*guest_code)(void));
/* The same with a full configuration (dirty backend, ring size...). */
struct kvm *vm_create_with_code_cfg(const struct kvm_config *cfg, void (*guest_code)(void));
/* A VM running a workload image (kvm/guest/NAME.bin) with args, not started. */
struct kvm *vm_create_with_workload(uint64_t mem, unsigned int nr_vcpus,
				    const char *guest, const char *args);
/* A VM with the same configuration as src and no boot setup: for restores. */
struct kvm *vm_create_like(struct kvm *src);

/* Copies the host's current value of a global into the guest's copy of it. */
void vm_sync_global(struct kvm *kvm, const void *addr, size_t size);
#define sync_global_to_guest(kvm, g) vm_sync_global(kvm, &(g), sizeof(g))

/*
 * Runs vCPU cpu on this thread until the next ucall; fails the test if the
 * VM stops instead, and prints guest assertion failures with expression,
 * file, line and values. Returns the ucall command.
 */
uint64_t vcpu_run_ucall(struct kvm_cpu *cpu, struct km_ucall *uc);
/* vcpu_run_ucall that also asserts the ucall is SYNC(stage). */
void vcpu_run_to_sync(struct kvm_cpu *cpu, uint64_t stage, struct km_ucall *uc);

/* Copies all guest RAM of src into dst (same layout). */
void vm_copy_memory(struct kvm *dst, const struct kvm *src);

/*
 * Waits until vCPU vcpu has reported a progress counter >= min (the VM runs
 * on its own threads). Fails the test after timeout_ms, or if the VM stops.
 */
void vm_wait_progress(struct kvm *kvm, unsigned int vcpu, uint64_t min,
		      unsigned int timeout_ms);
/* The vCPU's latest progress counter. */
uint64_t vm_progress(struct kvm *kvm, unsigned int vcpu);

#endif
