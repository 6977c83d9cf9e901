/*
 * The verify workload proves that no guest write was lost: zero bad pages
 * after pause/resume cycles and after a capture/restore into a new VM, and
 * a bad page reported when the test corrupts one (the check can fail).
 */
#include <string.h>

#include "err.h"
#include "log.h"
#include "record.h"
#include "tests/lib/kvm_test.h"
#include "kvm/state.h"

#define MEM		(64ULL << 20)
#define CHECK_MS	60000

static void check_pages(struct kvm *vm, uint64_t want_pages, uint64_t want_bad)
{
	uint64_t pages = 0, bad = 0;

	assert_int_equal(kvm__guest_check(vm, CHECK_MS, &pages, &bad), 0);
	assert_int_equal(pages, want_pages);
	assert_int_equal(bad, want_bad);
}

static void wait_all(struct kvm *vm, uint64_t min_each)
{
	unsigned int i;

	for (i = 0; i < vm->nr_cpus; i++)
		vm_wait_progress(vm, i, min_each, 30000);
}

static void test_verify_pause_resume(void **unused)
{
	struct kvm *vm = vm_create_with_workload(MEM, 2, "verify", "wss=16M,pattern=uniform");
	unsigned int round;

	assert_int_equal(kvm__start(vm), 0);
	wait_all(vm, 1000);
	for (round = 0; round < 10; round++) {
		uint64_t p0 = vm_progress(vm, 0), p1 = vm_progress(vm, 1);

		assert_int_equal(kvm__pause(vm), 0);
		assert_int_equal(kvm__resume(vm), 0);
		vm_wait_progress(vm, 0, p0 + 100, 30000);
		vm_wait_progress(vm, 1, p1 + 100, 30000);
	}
	check_pages(vm, 4096, 0);
	kvm__destroy(vm);
}

static void test_verify_restore_into_new_vm(void **unused)
{
	struct kvm *vm = vm_create_with_workload(MEM, 2, "verify", "wss=16M,pattern=zipf");
	struct buf *st = buf_new(REC_MAX_PAYLOAD);
	uint64_t at[2];
	struct kvm *vm2;

	assert_int_equal(kvm__start(vm), 0);
	wait_all(vm, 2000);
	assert_int_equal(kvm__pause(vm), 0);
	at[0] = vm_progress(vm, 0);
	at[1] = vm_progress(vm, 1);
	assert_int_equal(state__save_all(vm, st), 0);
	vm2 = vm_create_like(vm);
	vm_copy_memory(vm2, vm);
	kvm__destroy(vm);	/* the original never runs again: only the copy has the data */

	assert_int_equal(state__load_all(vm2, buf_ptr(st), buf_len(st)), 0);
	assert_int_equal(kvm__start(vm2), 0);
	/* The guest's own counters continue from where they were captured. */
	vm_wait_progress(vm2, 0, at[0] + 100, 30000);
	vm_wait_progress(vm2, 1, at[1] + 100, 30000);
	check_pages(vm2, 4096, 0);
	buf_free(st);
	kvm__destroy(vm2);
}

static void test_verify_detects_corruption(void **unused)
{
	/* 1024 pages, written sequentially 3000 times in all, then left alone. */
	struct kvm *vm = vm_create_with_workload(MEM, 1, "verify",
						 "wss=4M,pattern=sequential,count=3000");
	/* The table takes the first 2 free pages, the working set follows. */
	uint64_t victim = KM_FREE_GPA + 2 * KM_PAGE_SIZE + 10 * KM_PAGE_SIZE + 123;
	uint8_t *p;

	assert_int_equal(kvm__start(vm), 0);
	vm_wait_progress(vm, 0, 3000, 30000);
	check_pages(vm, 1024, 0);

	assert_int_equal(kvm__pause(vm), 0);
	p = memory__hva(&vm->mem, victim, 1);
	assert_non_null(p);
	*p ^= 0x40;
	assert_int_equal(kvm__resume(vm), 0);
	check_pages(vm, 1024, 1);
	kvm__destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_pause_resume),
		cmocka_unit_test(test_verify_restore_into_new_vm),
		cmocka_unit_test(test_verify_detects_corruption),
	};

	kvm_test_require_kvm();
	log_init("test-verify", LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
