/*
 * Complete VM and vCPU state, captured to and restored from records of the
 * lib/record.h codec (the same records later carried by migration streams
 * and snapshot files; field tags in docs/format.md). Memory is not part of
 * this: it travels as page records.
 *
 * Every function here requires that no vCPU is inside KVM_RUN (a paused VM,
 * or a VM whose vCPUs are driven by the caller's thread) and that pending
 * port I/O has been completed (kvm__pause does both).
 */
#ifndef KM_STATE_H
#define KM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct kvm;
struct kvm_config;
struct kvm_cpu;

enum state_tag {
	/* REC_VCPU_STATE fields; values are the raw KVM uAPI structs (x86-64). */
	ST_VCPU_ID = 1,		/* u64 */
	ST_CPUID = 2,		/* kvm_cpuid_entry2[] */
	ST_TSC_KHZ = 3,		/* u64 */
	ST_SREGS = 4,		/* struct kvm_sregs (hosts without SREGS2) */
	ST_SREGS2 = 5,		/* struct kvm_sregs2 */
	ST_REGS = 6,		/* struct kvm_regs */
	ST_XCRS = 7,		/* struct kvm_xcrs */
	ST_XSAVE = 8,		/* XSAVE area, 4096 bytes or the XSAVE2 size */
	ST_LAPIC = 9,		/* struct kvm_lapic_state (with an in-kernel irqchip) */
	ST_MSRS = 10,		/* kvm_msr_entry[] */
	ST_DEBUGREGS = 11,	/* struct kvm_debugregs */
	ST_MP_STATE = 12,	/* struct kvm_mp_state */
	ST_EVENTS = 13,		/* struct kvm_vcpu_events */

	/* REC_VM_STATE fields */
	ST_VM_CLOCK = 32,	/* struct kvm_clock_data */
	ST_VM_PIC_MASTER = 33,	/* struct kvm_irqchip */
	ST_VM_PIC_SLAVE = 34,
	ST_VM_IOAPIC = 35,
	ST_VM_PIT2 = 36,	/* struct kvm_pit_state2 */
	ST_VM_UART = 37,	/* struct uart_state (a Linux guest's COM1, uart.h) */
	ST_VM_DISK = 38,	/* virtio_blk__save's field list (a Linux guest's disk) */

	/* REC_VM_CONFIG fields */
	ST_CFG_MEM_SIZE = 64,	/* u64 bytes */
	ST_CFG_NR_VCPUS = 65,	/* u64 */
	ST_CFG_IRQCHIP = 66,	/* u64 0/1 */
	ST_CFG_SLOT = 67,	/* u64 gpa, u64 size, u64 memfd offset */
	ST_CFG_NAME = 68,	/* the VM's name, 1..48 bytes of [A-Za-z0-9._-] */
	ST_CFG_CPUID = 69,	/* kvm_cpuid_entry2[]: what the vCPUs were given */
	ST_CFG_RESIDENT = 70,	/* u64: guest RAM in use when sent (migrations only) */
	ST_CFG_PLATFORM = 71,	/* u64 enum state_platform; absent: a workload guest */
	ST_CFG_DISK = 72,	/* the disk image's absolute path (shared storage), if any */
	ST_CFG_DISK_RO = 73,	/* u64 1: the disk is read-only */
	ST_CFG_DISK_SIZE = 74,	/* u64: the disk's size in bytes */
};

/* What the guest sees besides CPU and memory (ST_CFG_PLATFORM). */
enum state_platform {
	STATE_PLATFORM_WORKLOAD = 0,	/* a built-in workload guest: hypercall ports */
	STATE_PLATFORM_PC = 1,		/* a Linux guest's PC: 16550, ACPI power ports (x86/pc.h) */
};

/* Appends one vCPU's fields (a REC_VCPU_STATE payload) to payload. */
int state__save_vcpu(struct kvm_cpu *cpu, struct buf *payload);
/* Applies a REC_VCPU_STATE payload, in the order KVM requires. */
int state__load_vcpu(struct kvm_cpu *cpu, const uint8_t *payload, uint32_t len);

int state__save_vm(struct kvm *kvm, struct buf *payload);
int state__load_vm(struct kvm *kvm, const uint8_t *payload, uint32_t len);

/* REC_VM_CONFIG payload for kvm, and its parse (fills mem_size, nr_vcpus, irqchip). */
/*
 * Whether the configuration's CPUID (ST_CFG_CPUID, if present) can run on
 * kvm's host: 0, or KM_ERR_UNSUPPORTED with the reason in why.
 */
int state__check_cpuid(struct kvm *kvm, const uint8_t *payload, uint32_t len, char *why,
		       size_t whylen);
int state__save_config(struct kvm *kvm, struct buf *payload);
int state__parse_config(const uint8_t *payload, uint32_t len, struct kvm_config *cfg);
/*
 * The platform a REC_VM_CONFIG payload names (a workload guest if none);
 * KM_ERR_UNSUPPORTED for one this version does not know.
 */
int state__config_platform(const uint8_t *payload, uint32_t len, enum state_platform *out);

/*
 * The whole machine state except memory, as records: REC_VM_CONFIG,
 * REC_VM_STATE, one REC_VCPU_STATE per vCPU. Appended to out.
 */
int state__save_all(struct kvm *kvm, struct buf *out);
/*
 * Restores what state__save_all wrote into kvm, which was created with the
 * same configuration. KM_ERR_INVALID if the configuration differs.
 */
int state__load_all(struct kvm *kvm, const uint8_t *data, size_t len);

/*
 * The same, one record at a time as a stream or file brings them (no
 * reframing): state__load_record for each state record in any order the
 * writer chose (config first), then state__load_complete. Each vCPU's
 * state is accepted once: a second record must not stand in for a
 * missing one.
 */
struct state_loader {
	uint64_t loaded;	/* vCPU ids seen (KM_MAX_VCPUS <= 64) */
	unsigned int vcpus;
	bool have_config;
};
/* REC_VM_CONFIG, REC_VM_STATE or REC_VCPU_STATE; other types are ignored. */
int state__load_record(struct kvm *kvm, struct state_loader *sl, uint32_t type,
		       const uint8_t *p, uint32_t len);
/* 0 once the config and every vCPU's state were loaded, else KM_ERR_TRUNCATED. */
int state__load_complete(struct kvm *kvm, const struct state_loader *sl);

/*
 * Moves every vCPU's TSC and the VM's kvmclock ns nanoseconds forward:
 * after a migration the guest's clocks have to show the time it did not
 * run, so that what it measures (its longest stall, a Linux guest's
 * uptime) is the real time.
 */
int state__advance_tsc(struct kvm *kvm, uint64_t ns);

#endif
