/*
 * The VMM core: ucalls, guest failures reported cleanly (triple fault,
 * privileged instruction, failed assertion), and pause/resume of running
 * vCPU threads with the guarantee that no vCPU runs while paused.
 */
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>

#include "err.h"
#include "log.h"
#include "tests/lib/kvm_test.h"

#define MEM (32ULL << 20)

static void guest_sync_three(void)
{
	KM_GUEST_SYNC(1);
	KM_GUEST_SYNC(2);
	KM_GUEST_SYNC(3);
}

static void test_sync_points(void **unused)
{
	struct kvm *vm = vm_create_with_code(MEM, 1, true, guest_sync_three);
	struct km_ucall uc;

	vcpu_run_to_sync(vm->cpus[0], 1, &uc);
	vcpu_run_to_sync(vm->cpus[0], 2, &uc);
	vcpu_run_to_sync(vm->cpus[0], 3, &uc);
	assert_int_equal(vcpu_run_ucall(vm->cpus[0], &uc), KM_UCALL_DONE);
	kvm__destroy(vm);
}

static void guest_assert_fails(void)
{
	volatile unsigned long long x = 41;

	KM_GUEST_ASSERT_EQ(x, 42);
}

static void test_guest_assert_reported(void **unused)
{
	struct kvm *vm = vm_create_with_code(MEM, 1, true, guest_assert_fails);
	struct km_ucall uc;

	assert_int_equal(kvm_cpu__run_until_ucall(vm->cpus[0], &uc), 0);
	assert_int_equal(uc.cmd, KM_UCALL_ASSERT);
	assert_string_equal(uc.msg, "x == 42");
	assert_int_equal(uc.args[1], 41);
	assert_int_equal(uc.args[2], 42);
	assert_non_null(strstr(uc.file, "test-vm.c"));
	kvm__destroy(vm);
}

static void guest_null_write(void)
{
	*(volatile int *)0 = 1;		/* page 0 is not present: #PF, no IDT: triple fault */
	KM_GUEST_SYNC(99);
}

static void guest_privileged(void)
{
	asm volatile("hlt");		/* CPL3: #GP, no IDT: triple fault */
	KM_GUEST_SYNC(99);
}

static void guest_wrmsr(void)
{
	asm volatile("wrmsr" : : "c"(0xc0000080), "a"(0), "d"(0));
	KM_GUEST_SYNC(99);
}

static void guest_write_boot_info(void)
{
	/* The boot info page is read-only to the guest. */
	*(volatile unsigned int *)KM_BOOT_INFO_GPA = 0;
	KM_GUEST_SYNC(99);
}

static void expect_shutdown(void (*code)(void))
{
	struct kvm *vm = vm_create_with_code(MEM, 1, true, code);
	struct km_ucall uc;
	int r;

	r = kvm_cpu__run_until_ucall(vm->cpus[0], &uc);
	assert_int_equal(r, KM_ERR_GUEST);
	assert_int_equal(vm->stop_reason, KVM_STOP_SHUTDOWN);
	assert_non_null(strstr(vm->stop_detail, "triple fault"));
	/* A stopped VM does not run again. */
	assert_int_equal(kvm_cpu__run_until_ucall(vm->cpus[0], &uc), KM_ERR_STATE);
	kvm__destroy(vm);
}

static void test_triple_fault(void **unused)
{
	expect_shutdown(guest_null_write);
}

static void test_privileged_hlt(void **unused)
{
	expect_shutdown(guest_privileged);
}

static void test_privileged_wrmsr(void **unused)
{
	expect_shutdown(guest_wrmsr);
}

static void test_boot_info_read_only(void **unused)
{
	expect_shutdown(guest_write_boot_info);
}

/*
 * Work done by all vCPUs together, in guest memory: the host reads the
 * guest's copy (at the same address) to see whether any vCPU ran.
 */
static volatile unsigned long long guest_work;

static void guest_count_forever(void)
{
	unsigned long long n = 0;

	for (;;) {
		n++;
		__atomic_fetch_add(&guest_work, 1, __ATOMIC_RELAXED);
		/* Report often: the test waits on reports, not on time. */
		if ((n & 0xffff) == 0)
			km_progress(n, 0);
	}
}

/* The guest's own work counter, read from guest memory. */
static unsigned long long work_done(struct kvm *vm)
{
	unsigned long long w;

	assert_int_equal(memory__read(&vm->mem, (uint64_t)(uintptr_t)&guest_work, &w, sizeof(w)), 0);
	return w;
}

/*
 * No vCPU runs: the guest's counter, read twice 20 ms apart (x the
 * machine's time factor; the interval is the measurement, not a wait for
 * something), does not move.
 */
static void assert_no_guest_work(struct kvm *vm)
{
	struct timespec apart = { 0, 20000000L * (long)kvm_test_time_factor() };
	unsigned long long w0 = work_done(vm);

	nanosleep(&apart, NULL);
	assert_int_equal(work_done(vm), w0);
}

static void pause_resume(unsigned int nr_vcpus)
{
	struct kvm *vm = vm_create_with_code(MEM, nr_vcpus, true, guest_count_forever);
	struct progress_sample s;
	unsigned long long work;
	unsigned int i, round;
	uint64_t before, since;

	assert_int_equal(kvm__start(vm), 0);
	for (i = 0; i < nr_vcpus; i++)
		vm_wait_progress(vm, i, 1, 30000);
	for (round = 0; round < 20; round++) {
		assert_int_equal(kvm__pause(vm), 0);
		assert_int_equal(vm->state, KVM_STATE_PAUSED);
		assert_int_equal(vm->nr_parked, vm->nr_live);
		for (i = 0; i < nr_vcpus; i++)
			assert_true(vm->cpus[i]->parked);
		/*
		 * While paused the guest does no work (its own counter stands
		 * still) and nothing reports: every report is a KVM exit of a
		 * running vCPU.
		 */
		since = kvm__now_ns();
		before = vm->progress.head;
		assert_no_guest_work(vm);
		assert_int_equal(vm->progress.head, before);
		assert_int_equal(progress__samples(&vm->progress, since, &s, 1), 0);
		work = work_done(vm);
		assert_int_equal(kvm__resume(vm), 0);
		for (i = 0; i < nr_vcpus; i++)
			vm_wait_progress(vm, i, vm_progress(vm, i) + 1, 30000);
		assert_true(work_done(vm) > work);
	}
	kvm__request_stop(vm, KVM_STOP_QUIT, "test over");
	kvm__join(vm);
	assert_int_equal(vm->stop_reason, KVM_STOP_QUIT);
	kvm__destroy(vm);
}

/* Asserts every vCPU is parked, does no work, and nothing reports meanwhile. */
static void assert_parked(struct kvm *vm)
{
	uint64_t before = vm->progress.head;
	unsigned int i;

	assert_int_equal(vm->nr_parked, vm->nr_live);
	for (i = 0; i < vm->nr_cpus; i++)
		assert_true(vm->cpus[i]->parked);
	assert_no_guest_work(vm);
	assert_int_equal(vm->progress.head, before);
}

/*
 * Holds: each holder releases only its own, and the vCPUs run when none
 * is left. A throttle's release must not undo a user's stop, nor the
 * user's cont a migration's pause; the throttle alone shows "running".
 */
static void test_holds(void **unused)
{
	struct kvm *vm = vm_create_with_code(MEM, 2, true, guest_count_forever);
	unsigned int i;

	assert_int_equal(kvm__start(vm), 0);
	for (i = 0; i < 2; i++)
		vm_wait_progress(vm, i, 1, 30000);

	assert_int_equal(kvm__hold(vm, KVM_HOLD_THROTTLE), 0);
	assert_int_equal(vm->state, KVM_STATE_RUNNING);	/* throttled, not paused */
	assert_parked(vm);
	assert_int_equal(kvm__pause(vm), 0);
	assert_int_equal(vm->state, KVM_STATE_PAUSED);
	assert_int_equal(kvm__release(vm, KVM_HOLD_THROTTLE), 0);
	assert_int_equal(vm->state, KVM_STATE_PAUSED);
	assert_parked(vm);
	assert_int_equal(kvm__holds(vm), KVM_HOLD_USER);

	assert_int_equal(kvm__hold(vm, KVM_HOLD_MIGRATION), 0);
	assert_int_equal(kvm__resume(vm), 0);
	assert_int_equal(vm->state, KVM_STATE_PAUSED);
	assert_parked(vm);
	assert_int_equal(kvm__release(vm, KVM_HOLD_MIGRATION), 0);
	assert_int_equal(kvm__holds(vm), 0);
	assert_int_equal(vm->state, KVM_STATE_RUNNING);
	for (i = 0; i < 2; i++)
		vm_wait_progress(vm, i, vm_progress(vm, i) + 1, 30000);

	kvm__request_stop(vm, KVM_STOP_QUIT, "test over");
	kvm__join(vm);
	kvm__destroy(vm);
}

static void test_pause_resume_1(void **unused)
{
	pause_resume(1);
}

static void test_pause_resume_2(void **unused)
{
	pause_resume(2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync_points),
		cmocka_unit_test(test_guest_assert_reported),
		cmocka_unit_test(test_triple_fault),
		cmocka_unit_test(test_privileged_hlt),
		cmocka_unit_test(test_privileged_wrmsr),
		cmocka_unit_test(test_boot_info_read_only),
		cmocka_unit_test(test_pause_resume_1),
		cmocka_unit_test(test_pause_resume_2),
		cmocka_unit_test(test_holds),
	};

	kvm_test_require_kvm();
	log_init("test-vm", LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
