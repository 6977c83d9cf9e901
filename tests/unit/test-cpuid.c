/*
 * Unit tests for the CPUID compatibility check a destination runs before
 * it accepts a migrating VM (kvm/x86/cpuid.c): synthetic tables, no KVM.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "kvm/x86/x86.h"

/* A host offering: leaf 1 ECX/EDX, leaf 7.0 EBX, leaf 0xd.0 EAX (XCR0). */
static struct kvm_cpuid2 *host(uint32_t l1_ecx, uint32_t l7_ebx, uint32_t xcr0)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 3 * sizeof(c->entries[0]));

	c->nent = 3;
	c->entries[0] = (struct kvm_cpuid_entry2){ .function = 1, .ecx = l1_ecx, .edx = 0xffff };
	c->entries[1] = (struct kvm_cpuid_entry2){ .function = 7, .index = 0,
		.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .ebx = l7_ebx };
	c->entries[2] = (struct kvm_cpuid_entry2){ .function = 0xd, .index = 0,
		.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = xcr0 };
	return c;
}

static void test_same_host_is_compatible(void **state)
{
	struct kvm_cpuid2 *h = host(0x1234, 0x0f0f, 0x7);

	(void)state;
	assert_ok(x86__cpuid_compatible(h->entries, h->nent, h, NULL, 0));
	free(h);
}

static void test_subset_is_compatible(void **state)
{
	struct kvm_cpuid2 *src = host(0x0034, 0x000f, 0x3), *dst = host(0x1234, 0x0f0f, 0x7);

	(void)state;
	assert_ok(x86__cpuid_compatible(src->entries, src->nent, dst, NULL, 0));
	free(src);
	free(dst);
}

static void test_missing_feature_named(void **state)
{
	struct kvm_cpuid2 *src = host(0x1234, 0x1f0f, 0x7), *dst = host(0x1234, 0x0f0f, 0x7);
	char why[160] = "";

	(void)state;
	assert_err(x86__cpuid_compatible(src->entries, src->nent, dst, why, sizeof(why)),
		   KM_ERR_UNSUPPORTED);
	assert_non_null(strstr(why, "7.0.ebx"));
	assert_non_null(strstr(why, "0x00001000"));
	free(src);
	free(dst);
}

static void test_missing_xsave_state(void **state)
{
	/* A guest given AVX-512 state (XCR0 bits 5-7) cannot go where it is not offered. */
	struct kvm_cpuid2 *src = host(0, 0, 0xe7), *dst = host(0, 0, 0x7);
	char why[160] = "";

	(void)state;
	assert_err(x86__cpuid_compatible(src->entries, src->nent, dst, why, sizeof(why)),
		   KM_ERR_UNSUPPORTED);
	assert_non_null(strstr(why, "XCR0"));
	free(src);
	free(dst);
}

static void test_osxsave_mirror_ignored(void **state)
{
	/* Leaf 1 ECX bit 27 reflects the guest's CR4.OSXSAVE, not the host. */
	struct kvm_cpuid2 *src = host(1U << 27, 0, 0x7), *dst = host(0, 0, 0x7);

	(void)state;
	assert_ok(x86__cpuid_compatible(src->entries, src->nent, dst, NULL, 0));
	free(src);
	free(dst);
}

static void test_leaf_absent_here(void **state)
{
	struct kvm_cpuid2 *src = host(0, 0x1, 0x7), *dst = host(0, 0, 0x7);

	(void)state;
	dst->nent = 1;	/* this host has no leaf 7 at all */
	assert_err(x86__cpuid_compatible(src->entries, src->nent, dst, NULL, 0),
		   KM_ERR_UNSUPPORTED);
	free(src);
	free(dst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_host_is_compatible),
		cmocka_unit_test(test_subset_is_compatible),
		cmocka_unit_test(test_missing_feature_named),
		cmocka_unit_test(test_missing_xsave_state),
		cmocka_unit_test(test_osxsave_mirror_ignored),
		cmocka_unit_test(test_leaf_absent_here),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
