/* CPUID for the guests: what KVM supports, with per-vCPU APIC ids. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "err.h"
#include "log.h"
#include "kvm/x86/x86.h"

#define CPUID_MAX_ENTRIES 1024	/* far above any real CPU; bounds the retry loop */

int x86__supported_cpuid(int sys_fd, struct kvm_cpuid2 **out)
{
	struct kvm_cpuid2 *c = NULL;
	unsigned int n;
	int r;

	/* KVM says E2BIG until the array is large enough. */
	for (n = 64; n <= CPUID_MAX_ENTRIES; n *= 2) {
		free(c);
		c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return -ENOMEM;
		c->nent = n;
		if (ioctl(sys_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			*out = c;
			return 0;
		}
		if (errno != E2BIG)
			break;
	}
	r = km_errno();
	log_error("KVM_GET_SUPPORTED_CPUID: %s", km_strerror(r));
	free(c);
	return r;
}

const struct kvm_cpuid_entry2 *x86__cpuid_entry(const struct kvm_cpuid2 *cpuid,
						uint32_t function, uint32_t index)
{
	uint32_t i;

	for (i = 0; i < cpuid->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		if (e->function != function)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != index)
			continue;
		return e;
	}
	return NULL;
}

int x86__cpuid_for_vcpu(const struct kvm_cpuid2 *cpuid, unsigned int id,
			struct kvm_cpuid2 **out)
{
	size_t size = sizeof(*cpuid) + cpuid->nent * sizeof(cpuid->entries[0]);
	struct kvm_cpuid2 *c = malloc(size);
	uint32_t i;

	if (!c)
		return -ENOMEM;
	memcpy(c, cpuid, size);
	for (i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			/* Initial APIC id in EBX[31:24], as firmware would report it. */
			e->ebx = (e->ebx & 0x00ffffffU) | (id << 24);
			break;
		case 0xb:
		case 0x1f:
			/* x2APIC id of this logical processor. */
			e->edx = id;
			break;
		}
	}
	*out = c;
	return 0;
}
