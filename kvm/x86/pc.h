/*
 * The PC platform of a Linux guest, beside its CPUs and memory: the
 * devices and ports a booted kernel expects to find again after a
 * migration or a restore (COM1 as a 16550, kvm/uart.h; the ACPI power
 * ports and the i8042 reset line, x86/linux.h; the VMM's CPUID bits).
 * Made by kvm-run for a boot (after linux__boot) and by vmrec_create for
 * a VM whose config record names STATE_PLATFORM_PC; its guest-visible
 * state travels in REC_VM_STATE (ST_VM_UART, kvm/state.h).
 */
#ifndef KM_X86_PC_H
#define KM_X86_PC_H

struct kvm;

/*
 * Makes kvm a Linux guest's PC: sets kvm->linux_guest, adds the VMM's
 * CPUID bits to kvm->cpuid (what a config record of it will carry), and
 * creates the UART (its console socket is the caller's: uart__listen_in).
 * 0 or a negative error.
 */
int pc__create(struct kvm *kvm);

#endif
