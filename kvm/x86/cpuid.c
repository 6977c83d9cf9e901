/* CPUID for the guests: what KVM supports, with per-vCPU APIC ids. */
#include <errno.h>
#include <stdio.h>
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

#define CPUID1_ECX_TSC_DEADLINE	(1U << 24)
#define CPUID1_ECX_HYPERVISOR	(1U << 31)

void x86__cpuid_vmm_bits(int vm_fd, struct kvm_cpuid2 *cpuid)
{
	uint32_t j;

	for (j = 0; j < cpuid->nent; j++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[j];

		if (e->function != 1)
			continue;
		e->ecx |= CPUID1_ECX_HYPERVISOR;
		if (ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0)
			e->ecx |= CPUID1_ECX_TSC_DEADLINE;
	}
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

/*
 * The feature words a guest may depend on once it has seen them: the
 * destination must offer every bit the source's guest was given.
 */
static const struct {
	uint32_t function, index;
	uint8_t reg;	/* 0 eax, 1 ebx, 2 ecx, 3 edx */
	const char *name;
} cpuid_features[] = {
	{ 0x1, 0, 2, "1.ecx" }, { 0x1, 0, 3, "1.edx" },
	{ 0x7, 0, 1, "7.0.ebx" }, { 0x7, 0, 2, "7.0.ecx" }, { 0x7, 0, 3, "7.0.edx" },
	{ 0xd, 0, 0, "0xd.0.eax (XCR0)" }, { 0xd, 1, 0, "0xd.1.eax" },
	{ 0x80000001, 0, 2, "0x80000001.ecx" }, { 0x80000001, 0, 3, "0x80000001.edx" },
};

static uint32_t cpuid_reg(const struct kvm_cpuid_entry2 *e, uint8_t reg)
{
	switch (reg) {
	case 0: return e->eax;
	case 1: return e->ebx;
	case 2: return e->ecx;
	default: return e->edx;
	}
}

int x86__cpuid_compatible(const struct kvm_cpuid_entry2 *src, uint32_t nent,
			  const struct kvm_cpuid2 *dst, char *why, size_t len)
{
	struct kvm_cpuid2 *s;
	const struct kvm_cpuid_entry2 *se, *de;
	uint32_t missing;
	unsigned int i;
	int r = 0;

	if (nent > CPUID_MAX_ENTRIES)
		return KM_ERR_TOO_LARGE;
	s = calloc(1, sizeof(*s) + nent * sizeof(s->entries[0]));
	if (!s)
		return -ENOMEM;
	s->nent = nent;
	memcpy(s->entries, src, nent * sizeof(s->entries[0]));
	for (i = 0; i < sizeof(cpuid_features) / sizeof(cpuid_features[0]); i++) {
		se = x86__cpuid_entry(s, cpuid_features[i].function, cpuid_features[i].index);
		if (!se)
			continue;
		de = x86__cpuid_entry(dst, cpuid_features[i].function, cpuid_features[i].index);
		missing = cpuid_reg(se, cpuid_features[i].reg) &
			  ~(de ? cpuid_reg(de, cpuid_features[i].reg) : 0);
		/*
		 * Bits KVM sets in a vCPU's CPUID as the guest changes CR4, not
		 * host features: leaf 1 ECX bit 27 (OSXSAVE, CR4.OSXSAVE) and
		 * leaf 7.0 ECX bit 4 (OSPKE, CR4.PKE, which Linux sets).
		 */
		if (cpuid_features[i].function == 1 && cpuid_features[i].reg == 2)
			missing &= ~(1U << 27);
		if (cpuid_features[i].function == 7 && cpuid_features[i].reg == 2)
			missing &= ~(1U << 4);
		if (missing) {
			if (why)
				snprintf(why, len, "CPUID %s bits 0x%08x are not offered here",
					 cpuid_features[i].name, missing);
			r = KM_ERR_UNSUPPORTED;
			break;
		}
	}
	free(s);
	return r;
}
