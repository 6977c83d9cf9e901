/*
 * State round trip: a vCPU whose general registers, x87/SSE/AVX registers,
 * MSRs and debug registers hold distinctive values is paused mid-computation,
 * captured, restored into a fresh VM and captured again. The two captures
 * must be byte-equal except for the fields that move with time (listed in
 * state_diff_allowed). The restored guest then finishes its computation with
 * the right result and finds its registers intact.
 *
 * Built with -mgeneral-regs-only so that the compiler never touches the
 * vector registers the guest is holding values in.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "err.h"
#include "log.h"
#include "record.h"
#include "tests/lib/kvm_test.h"
#include "kvm/state.h"
#include "kvm/x86/x86.h"

#define ITERATIONS	200000ULL
#define SYNC_AT		77777ULL
#define MSR_IA32_TSC		0x10
#define HV_X64_MSR_TIME_REF_COUNT	0x40000020	/* Hyper-V reference time, 100 ns units */
#define HV_X64_MSR_VP_RUNTIME		0x40000010	/* Hyper-V vCPU run time, 100 ns units */
#define MSR_STAR		0xc0000081
#define MSR_LSTAR		0xc0000082
#define MSR_CSTAR		0xc0000083
#define MSR_SYSCALL_MASK	0xc0000084
#define MSR_KERNEL_GS_BASE	0xc0000102
#define MSR_IA32_SYSENTER_ESP	0x175
#define MSR_IA32_SYSENTER_EIP	0x176

static const uint64_t vec_pattern[16][4] __attribute__((aligned(32))) = {
#define P(i) { 0x0101010101010101ULL * (i + 1), 0xa5a5a5a500000000ULL | i, \
	       0x1234567800000000ULL | (i << 8), 0xfedcba9876543210ULL ^ i }
	P(0), P(1), P(2), P(3), P(4), P(5), P(6), P(7),
	P(8), P(9), P(10), P(11), P(12), P(13), P(14), P(15),
#undef P
};
static uint64_t vec_readback[16][4] __attribute__((aligned(32)));
static int guest_has_avx;

static uint64_t mix(uint64_t acc, uint64_t i)
{
	acc ^= i + 0x9e3779b97f4a7c15ULL + (acc << 6) + (acc >> 2);
	return acc * 0xff51afd7ed558ccdULL;
}

/* Loads every vector register with its pattern (ymm where AVX is on). */
#define LOAD_VEC(n)								\
	if (guest_has_avx)							\
		asm volatile("vmovdqa %0, %%ymm" #n : : "m"(vec_pattern[n]));	\
	else									\
		asm volatile("movdqa %0, %%xmm" #n : : "m"(vec_pattern[n]))
#define STORE_VEC(n)								\
	if (guest_has_avx)							\
		asm volatile("vmovdqa %%ymm" #n ", %0" : "=m"(vec_readback[n]));	\
	else									\
		asm volatile("movdqa %%xmm" #n ", %0" : "=m"(vec_readback[n]))

static void guest_code(void)
{
	register uint64_t r12 asm("r12") = 0x1212121212121212ULL;
	register uint64_t r13 asm("r13") = 0x1313131313131313ULL;
	register uint64_t r14 asm("r14") = 0x1414141414141414ULL;
	register uint64_t r15 asm("r15") = 0x1515151515151515ULL;
	uint64_t acc = 0xcbf29ce484222325ULL, i, j;
	unsigned int n;

	LOAD_VEC(0); LOAD_VEC(1); LOAD_VEC(2); LOAD_VEC(3);
	LOAD_VEC(4); LOAD_VEC(5); LOAD_VEC(6); LOAD_VEC(7);
	LOAD_VEC(8); LOAD_VEC(9); LOAD_VEC(10); LOAD_VEC(11);
	LOAD_VEC(12); LOAD_VEC(13); LOAD_VEC(14); LOAD_VEC(15);
	/* x87: pi and 1 on the register stack. */
	asm volatile("fninit; fldpi; fld1");

	for (i = 0; i < ITERATIONS; i++) {
		acc = mix(acc, i);
		if (i == SYNC_AT) {
			asm volatile("" : "+r"(r12), "+r"(r13), "+r"(r14), "+r"(r15));
			KM_GUEST_SYNC(1);
			asm volatile("" : "+r"(r12), "+r"(r13), "+r"(r14), "+r"(r15));
		}
	}
	KM_GUEST_ASSERT_EQ(r12, 0x1212121212121212ULL);
	KM_GUEST_ASSERT_EQ(r13, 0x1313131313131313ULL);
	KM_GUEST_ASSERT_EQ(r14, 0x1414141414141414ULL);
	KM_GUEST_ASSERT_EQ(r15, 0x1515151515151515ULL);

	STORE_VEC(0); STORE_VEC(1); STORE_VEC(2); STORE_VEC(3);
	STORE_VEC(4); STORE_VEC(5); STORE_VEC(6); STORE_VEC(7);
	STORE_VEC(8); STORE_VEC(9); STORE_VEC(10); STORE_VEC(11);
	STORE_VEC(12); STORE_VEC(13); STORE_VEC(14); STORE_VEC(15);
	for (n = 0; n < 16; n++)
		for (j = 0; j < (guest_has_avx ? 4u : 2u); j++)
			KM_GUEST_ASSERT_EQ(vec_readback[n][j], vec_pattern[n][j]);
	{
		/* fld1 is on top, pi below it: 1 + pi stored as an integer * 1e6. */
		uint64_t v;
		unsigned int scale = 1000000;

		asm volatile("faddp; fimull %1; fistpll %0" : "=m"(v) : "m"(scale));
		KM_GUEST_ASSERT_EQ(v, 4141593ULL);
	}
	km_ucall(KM_UCALL_SYNC, 2, acc, 0, __FILE__, 0);
}

static const uint32_t test_msrs[][2] = {
	{ MSR_STAR, 0 }, { MSR_LSTAR, 1 }, { MSR_CSTAR, 2 }, { MSR_SYSCALL_MASK, 3 },
	{ MSR_KERNEL_GS_BASE, 4 }, { MSR_IA32_SYSENTER_ESP, 5 }, { MSR_IA32_SYSENTER_EIP, 6 },
};

static uint64_t test_msr_value(unsigned int i)
{
	/* The SYSENTER MSRs hold 32 bits on AMD (KVM keeps only those there). */
	if (i == 5 || i == 6)
		return 0x7f000000ULL + 0x1000 * (i + 1);
	/* Canonical addresses, distinct per MSR. */
	return i == 3 ? 0x47700 : 0xffffffff81000000ULL + 0x1000 * (i + 1);
}

#define NR_TEST_MSRS	(sizeof(test_msrs) / sizeof(test_msrs[0]))

struct test_msr_list {
	struct kvm_msrs hdr;
	struct kvm_msr_entry e[NR_TEST_MSRS];
};

/* The test MSRs for KVM_GET_MSRS or, with their values, KVM_SET_MSRS. */
static void test_msr_list(struct test_msr_list *m, bool values)
{
	unsigned int i;

	memset(m, 0, sizeof(*m));
	m->hdr.nmsrs = NR_TEST_MSRS;
	for (i = 0; i < NR_TEST_MSRS; i++) {
		m->e[i].index = test_msrs[i][0];
		if (values)
			m->e[i].data = test_msr_value(test_msrs[i][1]);
	}
}

static void set_distinctive_state(struct kvm_cpu *cpu)
{
	struct test_msr_list m;
	struct kvm_debugregs dr;

	test_msr_list(&m, true);
	assert_int_equal(ioctl(cpu->fd, KVM_SET_MSRS, &m), (int)NR_TEST_MSRS);
	memset(&dr, 0, sizeof(dr));
	assert_int_equal(ioctl(cpu->fd, KVM_GET_DEBUGREGS, &dr), 0);
	dr.db[0] = 0x400000;
	dr.db[1] = 0x401000;
	dr.db[2] = 0x402000;
	dr.db[3] = 0x403000;
	/* DR7 stays without enabled breakpoints: the guest must not trap. */
	assert_int_equal(ioctl(cpu->fd, KVM_SET_DEBUGREGS, &dr), 0);
}

/*
 * What set_distinctive_state set, read back from a vCPU with KVM's own
 * getters, independent of the state module: a field its save path dropped
 * would still compare equal between two captures, but not here.
 */
static void assert_distinctive_state(struct kvm_cpu *cpu)
{
	struct test_msr_list m;
	struct kvm_debugregs dr;
	unsigned int i;

	test_msr_list(&m, false);
	assert_int_equal(ioctl(cpu->fd, KVM_GET_MSRS, &m), (int)NR_TEST_MSRS);
	for (i = 0; i < NR_TEST_MSRS; i++) {
		if (m.e[i].data != test_msr_value(test_msrs[i][1]))
			fail_msg("MSR 0x%x in the restored vCPU: 0x%llx, set 0x%llx", m.e[i].index,
				 (unsigned long long)m.e[i].data,
				 (unsigned long long)test_msr_value(test_msrs[i][1]));
	}
	assert_int_equal(ioctl(cpu->fd, KVM_GET_DEBUGREGS, &dr), 0);
	assert_int_equal(dr.db[0], 0x400000);
	assert_int_equal(dr.db[1], 0x401000);
	assert_int_equal(dr.db[2], 0x402000);
	assert_int_equal(dr.db[3], 0x403000);
}

/*
 * Fields that legitimately differ between two captures taken at different
 * times: the TSC runs, the Hyper-V reference and run-time counters follow
 * kvmclock and the reading thread's CPU time, kvmclock runs, and the PIT
 * records when each counter was loaded. Returns 1 if the difference at
 * (tag, offset) is one of those.
 */
static int state_diff_allowed(uint32_t rec_type, uint32_t tag, const uint8_t *a,
			      const uint8_t *b, uint32_t len)
{
	if (rec_type == REC_VM_STATE && (tag == ST_VM_CLOCK || tag == ST_VM_PIT2))
		return 1;
	if (rec_type == REC_VCPU_STATE && tag == ST_MSRS) {
		uint32_t i;

		for (i = 0; i + sizeof(struct kvm_msr_entry) <= len;
		     i += sizeof(struct kvm_msr_entry)) {
			const struct kvm_msr_entry *ea = (const void *)(a + i);
			const struct kvm_msr_entry *eb = (const void *)(b + i);

			if (ea->index != eb->index)
				return 0;
			if (ea->data == eb->data)
				continue;
			/* The TSC runs on: it may only have grown. */
			if (ea->index == MSR_IA32_TSC && eb->data >= ea->data)
				continue;
			/*
			 * The Hyper-V counters are derived, not stored: the reference
			 * count from kvmclock (restored from a reading taken before
			 * the MSRs were read, so it may come back slightly lower), the
			 * run time from the reading thread's CPU time. Within 10 s
			 * (10^8 units of 100 ns) either way is the same state.
			 */
			if ((ea->index == HV_X64_MSR_TIME_REF_COUNT ||
			     ea->index == HV_X64_MSR_VP_RUNTIME) &&
			    (eb->data > ea->data ? eb->data - ea->data : ea->data - eb->data) <=
			    100000000ULL)
				continue;
			print_error("MSR 0x%x: 0x%llx before, 0x%llx after the round trip\n",
				    ea->index, (unsigned long long)ea->data,
				    (unsigned long long)eb->data);
			return 0;
		}
		return 1;
	}
	return 0;
}

/* Compares two state_save_all outputs record by record, field by field. */
static void assert_state_equal(struct buf *s1, struct buf *s2)
{
	struct buf *a = buf_view(buf_ptr(s1), buf_len(s1));
	struct buf *b = buf_view(buf_ptr(s2), buf_len(s2));
	unsigned int diffs = 0;

	while (buf_len(a) > 0) {
		const uint8_t *pa, *pb, *fa, *fb;
		uint32_t ta, tb, la, lb, ga, gb, fla, flb;
		struct buf *va, *vb;

		assert_int_equal(rec_get(a, REC_MAX_PAYLOAD, &ta, &pa, &la), 0);
		assert_int_equal(rec_get(b, REC_MAX_PAYLOAD, &tb, &pb, &lb), 0);
		assert_int_equal(ta, tb);
		va = buf_view(pa, la);
		vb = buf_view(pb, lb);
		for (;;) {
			int ra = rec_get_field(va, &ga, &fa, &fla);
			int rb = rec_get_field(vb, &gb, &fb, &flb);

			assert_int_equal(ra, rb);
			if (ra == KM_ERR_END)
				break;
			assert_int_equal(ra, 0);
			assert_int_equal(ga, gb);
			assert_int_equal(fla, flb);
			if (memcmp(fa, fb, fla) == 0 || state_diff_allowed(ta, ga, fa, fb, fla))
				continue;
			for (uint32_t o = 0; o < fla; o++) {
				if (fa[o] != fb[o]) {
					print_error("record %u field %u differs at byte %u: "
						    "0x%02x before, 0x%02x after\n",
						    ta, ga, o, fa[o], fb[o]);
					break;
				}
			}
			diffs++;
		}
		buf_free(va);
		buf_free(vb);
	}
	assert_int_equal(buf_len(b), 0);
	buf_free(a);
	buf_free(b);
	assert_int_equal(diffs, 0);
}

static uint64_t expected_acc(void)
{
	uint64_t acc = 0xcbf29ce484222325ULL, i;

	for (i = 0; i < ITERATIONS; i++)
		acc = mix(acc, i);
	return acc;
}

static void round_trip(bool irqchip)
{
	struct kvm *vm, *vm2;
	struct km_ucall uc;
	struct buf *s1 = buf_new(REC_MAX_PAYLOAD), *s2 = buf_new(REC_MAX_PAYLOAD);
	const struct kvm_cpuid_entry2 *e;

	vm = vm_create_with_code(64ULL << 20, 1, irqchip, guest_code);
	e = x86__cpuid_entry(vm->cpuid, 1, 0);
	guest_has_avx = e && (e->ecx & (1U << 28)) && (e->ecx & (1U << 26));
	sync_global_to_guest(vm, guest_has_avx);
	print_message("# AVX %s\n", guest_has_avx ? "on: ymm state checked" : "off: xmm only");

	vcpu_run_to_sync(vm->cpus[0], 1, &uc);
	assert_int_equal(kvm_cpu__complete_io(vm->cpus[0]), 0);
	set_distinctive_state(vm->cpus[0]);
	assert_int_equal(state__save_all(vm, s1), 0);

	vm2 = vm_create_like(vm);
	vm_copy_memory(vm2, vm);
	assert_int_equal(state__load_all(vm2, buf_ptr(s1), buf_len(s1)), 0);
	assert_distinctive_state(vm2->cpus[0]);
	assert_int_equal(state__save_all(vm2, s2), 0);
	assert_state_equal(s1, s2);

	/* The restored guest finishes with the right result and intact registers. */
	assert_int_equal(vcpu_run_ucall(vm2->cpus[0], &uc), KM_UCALL_SYNC);
	assert_int_equal(uc.args[0], 2);
	assert_int_equal(uc.args[1], expected_acc());

	buf_free(s1);
	buf_free(s2);
	kvm__destroy(vm2);
	kvm__destroy(vm);
}

/*
 * Peer-supplied state is checked as strictly as the config: a copy of a
 * real capture with one thing wrong is refused by the loader. mutate()
 * rewrites each vCPU record's fields through edit (which appends what it
 * keeps to out), or, with dup_vcpu0, replaces vCPU 1's record by a second
 * copy of vCPU 0's.
 */
typedef void (*field_edit)(struct kvm *vm, uint32_t tag, const uint8_t *d, uint32_t len,
			   struct buf *out);

static struct buf *mutate(struct kvm *vm, struct buf *state, field_edit edit, bool dup_vcpu0)
{
	struct buf *in = buf_view(buf_ptr(state), buf_len(state));
	struct buf *out = buf_new(REC_MAX_PAYLOAD), *pl = buf_new(REC_MAX_PAYLOAD);
	const uint8_t *p, *vcpu0 = NULL, *d;
	uint32_t type, len, vcpu0_len = 0, tag, dlen, k = 0;

	while (buf_len(in) > 0) {
		assert_int_equal(rec_get(in, REC_MAX_PAYLOAD, &type, &p, &len), 0);
		if (type != REC_VCPU_STATE) {
			assert_int_equal(rec_put(out, type, p, len), 0);
			continue;
		}
		if (k++ == 0) {
			vcpu0 = p;
			vcpu0_len = len;
		} else if (dup_vcpu0) {
			assert_int_equal(rec_put(out, type, vcpu0, vcpu0_len), 0);
			continue;
		}
		if (!edit) {
			assert_int_equal(rec_put(out, type, p, len), 0);
			continue;
		}
		{
			struct buf *f = buf_view(p, len);

			buf_reset(pl);
			while (rec_get_field(f, &tag, &d, &dlen) == 0)
				edit(vm, tag, d, dlen, pl);
			buf_free(f);
		}
		assert_int_equal(rec_put(out, type, buf_ptr(pl), (uint32_t)buf_len(pl)), 0);
	}
	buf_free(in);
	buf_free(pl);
	return out;
}

static void keep(struct buf *out, uint32_t tag, const uint8_t *d, uint32_t len)
{
	assert_int_equal(rec_put_field(out, tag, d, len), 0);
}

/* An MSR this VMM never saves, appended to the vCPU's MSRs. */
static void add_unknown_msr(struct kvm *vm, uint32_t tag, const uint8_t *d, uint32_t len,
			    struct buf *out)
{
	uint8_t more[64 * 1024];
	struct kvm_msr_entry e = { .index = 0x4b4d0001, .data = 1 };

	if (tag != ST_MSRS || len + sizeof(e) > sizeof(more)) {
		keep(out, tag, d, len);
		return;
	}
	memcpy(more, d, len);
	memcpy(more + len, &e, sizeof(e));
	keep(out, tag, more, len + (uint32_t)sizeof(e));
}

/* A feature of leaf 7.0 EBX that this host does not offer, asked for. */
static void add_missing_feature(struct kvm *vm, uint32_t tag, const uint8_t *d, uint32_t len,
				struct buf *out)
{
	const struct kvm_cpuid_entry2 *host = x86__cpuid_entry(vm->cpuid, 7, 0);
	struct kvm_cpuid_entry2 *e;
	uint8_t copy[64 * 1024];
	uint32_t i, bit;

	if (tag != ST_CPUID || len > sizeof(copy)) {
		keep(out, tag, d, len);
		return;
	}
	memcpy(copy, d, len);
	for (bit = 0; bit < 32 && host && (host->ebx & (1U << bit)); bit++)
		;
	assert_true(host && bit < 32);	/* some leaf 7 feature is missing here */
	for (i = 0; i < len / sizeof(*e); i++) {
		e = (struct kvm_cpuid_entry2 *)copy + i;
		if (e->function == 7 && e->index == 0)
			e->ebx |= 1U << bit;
	}
	keep(out, tag, copy, len);
}

static void refused(field_edit edit, bool dup_vcpu0, int want)
{
	struct kvm *vm = vm_create_with_code(64ULL << 20, 2, true, guest_code), *vm2;
	struct buf *s1 = buf_new(REC_MAX_PAYLOAD), *bad;
	struct km_ucall uc;

	vcpu_run_to_sync(vm->cpus[0], 1, &uc);
	assert_int_equal(kvm_cpu__complete_io(vm->cpus[0]), 0);
	assert_int_equal(state__save_all(vm, s1), 0);
	bad = mutate(vm, s1, edit, dup_vcpu0);
	vm2 = vm_create_like(vm);
	assert_int_equal(state__load_all(vm2, buf_ptr(bad), buf_len(bad)), want);
	/* The unchanged capture loads: the refusal was for what was changed. */
	kvm__destroy(vm2);
	vm2 = vm_create_like(vm);
	assert_int_equal(state__load_all(vm2, buf_ptr(s1), buf_len(s1)), 0);
	buf_free(bad);
	buf_free(s1);
	kvm__destroy(vm2);
	kvm__destroy(vm);
}

static void test_state_refuses_duplicate_vcpu(void **unused)
{
	refused(NULL, true, KM_ERR_CORRUPT);
}

static void test_state_refuses_unknown_msr(void **unused)
{
	refused(add_unknown_msr, false, KM_ERR_CORRUPT);
}

static void test_state_refuses_cpuid_beyond_host(void **unused)
{
	refused(add_missing_feature, false, KM_ERR_UNSUPPORTED);
}

static void test_state_round_trip_irqchip(void **unused)
{
	round_trip(true);
}

static void test_state_round_trip_no_irqchip(void **unused)
{
	round_trip(false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_round_trip_irqchip),
		cmocka_unit_test(test_state_round_trip_no_irqchip),
		cmocka_unit_test(test_state_refuses_duplicate_vcpu),
		cmocka_unit_test(test_state_refuses_unknown_msr),
		cmocka_unit_test(test_state_refuses_cpuid_beyond_host),
	};

	kvm_test_require_kvm();
	log_init("test-state", LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
