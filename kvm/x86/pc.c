/* The PC platform of a Linux guest (x86/pc.h). */
#include "kvm/kvm.h"
#include "kvm/uart.h"
#include "kvm/x86/pc.h"
#include "kvm/x86/x86.h"

int pc__create(struct kvm *kvm)
{
	kvm->linux_guest = true;
	x86__cpuid_vmm_bits(kvm->vm_fd, kvm->cpuid);
	return kvm->uart ? 0 : uart__create(kvm);
}
