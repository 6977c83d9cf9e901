/* x86-specific parts of the VMM: CPUID, the CPL3 long-mode boot, MSR lists. */
#ifndef KM_X86_H
#define KM_X86_H

#include <stdint.h>
#include <linux/kvm.h>

struct kvm;
struct kvm_cpu;

/* KVM_GET_SUPPORTED_CPUID into a malloc'd kvm_cpuid2 owned by the caller. */
int x86__supported_cpuid(int sys_fd, struct kvm_cpuid2 **out);
/* A copy of cpuid with vCPU id's APIC ids patched in; caller frees. */
int x86__cpuid_for_vcpu(const struct kvm_cpuid2 *cpuid, unsigned int id,
			struct kvm_cpuid2 **out);
/*
 * Adds to leaf 1 what a VMM gives on top of KVM_GET_SUPPORTED_CPUID: the
 * hypervisor bit (a kernel then trusts kvmclock and skips what makes no
 * sense in a VM), and the TSC-deadline timer, which KVM emulates in its
 * LAPIC but reports by a capability (asked on vm_fd). A Linux guest is
 * given both; a migration's destination offers both.
 */
void x86__cpuid_vmm_bits(int vm_fd, struct kvm_cpuid2 *cpuid);
/* The entry for (function, index), or NULL. */
const struct kvm_cpuid_entry2 *x86__cpuid_entry(const struct kvm_cpuid2 *cpuid,
						uint32_t function, uint32_t index);

/*
 * Whether a VM whose vCPUs were given the nent entries at src can run on a
 * host offering dst (KVM_GET_SUPPORTED_CPUID): every feature bit of the
 * leaves guests test (1, 7.0, 0xd.0/1, 0x80000001) must be offered here.
 * 0, or KM_ERR_UNSUPPORTED with the first missing word named in why.
 */
int x86__cpuid_compatible(const struct kvm_cpuid_entry2 *src, uint32_t nent,
			  const struct kvm_cpuid2 *dst, char *why, size_t len);

/*
 * Writes the system area of guest memory for a fresh boot: identity page
 * tables (2 MiB pages, the first 2 MiB in 4 KiB pages so system pages are
 * protected), GDT and TSS, and the boot info page.
 */
int x86__setup_memory(struct kvm *kvm, const char *guest, const char *args);
/* Sets a vCPU's SREGS, REGS and XCR0 for CPL3 entry at entry (abi.h). */
int x86__setup_vcpu(struct kvm_cpu *cpu, uint64_t entry);

/*
 * The MSRs to save for every vCPU: KVM_GET_MSR_INDEX_LIST, less those that
 * cannot be read on this host (probed on vCPU cpu). Stored in kvm.
 */
int x86__probe_msrs(struct kvm *kvm, struct kvm_cpu *cpu);

#endif
