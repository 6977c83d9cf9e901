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
/*
 * The same for a VM made from a REC_VM_CONFIG payload p naming the PC
 * platform, with its disk if the config names one (ST_CFG_DISK): opened
 * at the same path (storage shared between hosts) without taking its
 * lock, which pc__disk_take does once the VM is to run here. A disk that
 * cannot be opened here refuses the VM (the reason in why): before any
 * page was sent, so the source runs on untouched.
 */
int pc__create_from_config(struct kvm *kvm, const uint8_t *p, uint32_t len, char *why,
			   size_t whylen);

/*
 * The disk's lock at a migration's switchover, so that never two
 * processes write the image: the source, paused, syncs the image and
 * gives up its lock before it sends GO (pc__disk_release); the
 * destination takes it on GO before the VM is published or runs, and
 * refuses to run it if another process holds it (pc__disk_take). A
 * source that is to resume takes it back first, and stays paused if it
 * cannot. Both are no-ops for a VM without a disk. 0 or a negative error
 * (logged; -EBUSY: another process holds the lock).
 */
int pc__disk_release(struct kvm *kvm);
int pc__disk_take(struct kvm *kvm);

#endif
