/* Port I/O of the guests: the serial console and the hypercalls of guest/abi.h. */
#ifndef KM_IOPORT_H
#define KM_IOPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "kvm/guest/abi.h"

struct kvm;
struct kvm_cpu;

/* What a handled exit asks of the run loop. */
enum ioport_action {
	IOPORT_CONTINUE,	/* re-enter the guest */
	IOPORT_UCALL,		/* a ucall arrived: *uc is filled */
	IOPORT_VCPU_DONE,	/* this vCPU finished (KM_HC_DONE) */
	IOPORT_STOP,		/* the VM must stop (reason recorded) */
};

/*
 * Handles a KVM_EXIT_IO of cpu. For a ucall, copies the guest's struct into
 * *uc (bounded; the guest's strings are NUL-terminated by the copy).
 */
enum ioport_action ioport__handle(struct kvm_cpu *cpu, struct km_ucall *uc);
/* The same for a KVM_EXIT_MMIO: the hypercall page and the MMIO console (abi.h). */
enum ioport_action ioport__mmio(struct kvm_cpu *cpu, struct km_ucall *uc);

/*
 * The default treatment of a ucall in a VM run by threads (kvm-run): SYNC
 * and PRINT are logged, DONE finishes the vCPU, ASSERT fails the VM.
 */
enum ioport_action ioport__default_ucall(struct kvm_cpu *cpu, const struct km_ucall *uc);

/*
 * Guest console bytes to the console sink: the --console file as they
 * are, or the log, in marked lines (kvm.h console_marked). Any thread.
 */
void ioport__console_write(struct kvm *kvm, const void *p, size_t len);

/* Writes out a console line the guest left unfinished (kvm.h console_marked). */
void ioport__console_end(struct kvm *kvm);

#endif
