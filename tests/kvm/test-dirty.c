/*
 * Dirty tracking is exact, for every backend: 2 vCPUs write a known
 * pseudo-random set of pages (in both memory slots) between two sync
 * points; each subscriber then reports exactly that set. Nothing may be
 * missing; extra pages are allowed only where the test can name them: the
 * vCPU stacks (ucall structs), the page tables (accessed/dirty bits the CPU
 * sets), the GDT page (descriptor accessed bits), and in the first round
 * the pages of this test binary the guest reads or runs for the first time:
 * with TDP, KVM maps a page writable on its first fault, read or write, and
 * so logs it as dirty right away (make_spte + mark_page_dirty_in_slot). Also: two subscribers
 * reading at different moments, a dirty ring far smaller than a round,
 * writes by the VMM, and logging switched off and on while the guest runs.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "tests/lib/kvm_test.h"

#define MEM		((3ULL << 30) + (64ULL << 20))	/* two slots: 3 GiB + 64 MiB above 4 GiB */
#define NR_VCPUS	2
#define ROUNDS		12
#define LO_BASE		(16ULL << 20)	/* the test's pages: 48 MiB below the hole... */
#define LO_PAGES	(12288ULL)
#define HI_BASE		KM_HIGH_GPA	/* ...and the 64 MiB above 4 GiB */
#define HI_PAGES	(16384ULL)

static uint64_t writes_per_round = 600;	/* per vCPU; synced to the guest */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* The i-th page vCPU v writes in round r; the host computes the same. */
static uint64_t test_page_gpa(uint64_t r, uint64_t v, uint64_t i)
{
	uint64_t n = mix64((r << 40) ^ (v << 32) ^ i) % (LO_PAGES + HI_PAGES);

	return n < LO_PAGES ? LO_BASE + n * KM_PAGE_SIZE : HI_BASE + (n - LO_PAGES) * KM_PAGE_SIZE;
}

static void guest_writer(const struct km_boot_info *bi, unsigned long vcpu)
{
	uint64_t r, i;

	for (r = 1;; r++) {
		for (i = 0; i < writes_per_round; i++)
			*(volatile uint64_t *)(test_page_gpa(r, vcpu, i) + vcpu * 8) = r;
		KM_GUEST_SYNC(r);
	}
}

struct runner {
	struct kvm *vm;
	pthread_barrier_t at_sync, go;
	int failed[NR_VCPUS];
	uint64_t stage[NR_VCPUS];
};

struct vcpu_arg {
	struct runner *run;
	unsigned int id;
};

/* Each vCPU on its own thread: run to the next sync, wait for the host. */
static void *vcpu_thread(void *p)
{
	struct vcpu_arg *a = p;
	struct runner *run = a->run;
	struct km_ucall uc;
	int r;

	for (;;) {
		r = kvm_cpu__run_until_ucall(run->vm->cpus[a->id], &uc);
		if (r != 0 || uc.cmd != KM_UCALL_SYNC)
			run->failed[a->id] = 1;
		else
			run->stage[a->id] = uc.args[0];
		pthread_barrier_wait(&run->at_sync);
		if (run->failed[a->id])
			return NULL;
		pthread_barrier_wait(&run->go);
		if (atomic_load(&run->vm->stop_req))
			return NULL;
	}
}

extern char _end[];	/* the linker's end of this (non-PIE) binary's image */

static bool explainable(struct kvm *vm, uint64_t gpa, uint64_t first_round)
{
	if (first_round == 1 && gpa >= KM_FREE_GPA && gpa < (uint64_t)(uintptr_t)_end)
		return true;
	if (gpa >= KM_STACKS_GPA && gpa < KM_STACKS_GPA + NR_VCPUS * KM_STACK_SIZE)
		return true;
	if (gpa >= KM_PGTABLE_GPA && gpa < KM_PGTABLE_END)
		return true;
	return gpa == KM_GDT_GPA;
}

/*
 * Compares a read against the union of rounds [from, to]. Prints what is
 * missing and every unexplained extra; returns the number of problems.
 */
static unsigned int compare_rounds(struct kvm *vm, const struct bitmap *got,
				   uint64_t from, uint64_t to, const struct bitmap *also)
{
	struct bitmap want;
	uint64_t r, v, i, n, extras = 0;
	unsigned int problems = 0;

	assert_int_equal(bitmap_init(&want, got->nbits), 0);
	for (r = from; r <= to; r++)
		for (v = 0; v < NR_VCPUS; v++)
			for (i = 0; i < writes_per_round; i++)
				bitmap_set(&want, memory__page_of(&vm->mem, test_page_gpa(r, v, i)));
	if (also)
		bitmap_or_at(&want, 0, also->words, also->nbits);
	for (n = 0; n < got->nbits; n++) {
		bool w = bitmap_test(&want, n), g = bitmap_test(got, n);
		uint64_t gpa = memory__gpa_of(&vm->mem, n);

		if (w && !g) {
			if (problems++ < 10)
				print_error("rounds %llu-%llu: page 0x%llx written but not reported\n",
					    (unsigned long long)from, (unsigned long long)to,
					    (unsigned long long)gpa);
		} else if (g && !w) {
			if (explainable(vm, gpa, from)) {
				extras++;
			} else if (problems++ < 10) {
				print_error("rounds %llu-%llu: page 0x%llx reported but never written\n",
					    (unsigned long long)from, (unsigned long long)to,
					    (unsigned long long)gpa);
			}
		}
	}
	/* The explained extras are few: a stack page or two, a few page-table pages. */
	if (extras > 32) {
		print_error("%llu explained extras: more than stacks and page tables can be\n",
			    (unsigned long long)extras);
		problems++;
	}
	bitmap_free(&want);
	return problems;
}

static void run_rounds(struct runner *run, unsigned int rounds,
		       void (*at_sync)(struct runner *run, uint64_t round, void *ctx), void *ctx)
{
	pthread_t th[NR_VCPUS];
	struct vcpu_arg args[NR_VCPUS];
	unsigned int i, r;

	pthread_barrier_init(&run->at_sync, NULL, NR_VCPUS + 1);
	pthread_barrier_init(&run->go, NULL, NR_VCPUS + 1);
	for (i = 0; i < NR_VCPUS; i++) {
		args[i].run = run;
		args[i].id = i;
		pthread_create(&th[i], NULL, vcpu_thread, &args[i]);
	}
	for (r = 1; r <= rounds; r++) {
		pthread_barrier_wait(&run->at_sync);
		for (i = 0; i < NR_VCPUS; i++) {
			if (run->failed[i] || run->stage[i] != r) {
				kvm__request_stop(run->vm, KVM_STOP_QUIT, "test failed");
				pthread_barrier_wait(&run->go);
				fail_msg("vCPU %u: %s at round %u (stage %llu): %s", i,
					 run->failed[i] ? "stopped" : "out of step", r,
					 (unsigned long long)run->stage[i], run->vm->stop_detail);
			}
		}
		at_sync(run, r, ctx);
		if (r == rounds)
			atomic_store(&run->vm->stop_req, 1);
		pthread_barrier_wait(&run->go);
	}
	for (i = 0; i < NR_VCPUS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&run->at_sync);
	pthread_barrier_destroy(&run->go);
}

static struct kvm *vm_for(enum dirty_backend backend, uint32_t ring_bytes)
{
	struct kvm_config cfg = {
		.mem_size = MEM, .nr_vcpus = NR_VCPUS, .irqchip = true, .name = "dirty",
		.dirty_backend = backend, .dirty_ring_bytes = ring_bytes,
	};

	return vm_create_with_code_cfg(&cfg, (void (*)(void))guest_writer);
}

/* Exactness: two subscribers, A reads every round, B every third round. */
struct exact_ctx {
	int a, b;
	uint64_t b_from;
	struct bitmap got;
};

static void exact_at_sync(struct runner *run, uint64_t r, void *p)
{
	struct exact_ctx *c = p;

	assert_true(dirty__read(&run->vm->dirty, c->a, &c->got) >= 0);
	assert_int_equal(compare_rounds(run->vm, &c->got, r, r, NULL), 0);
	if (r % 3 == 0) {
		assert_true(dirty__read(&run->vm->dirty, c->b, &c->got) >= 0);
		assert_int_equal(compare_rounds(run->vm, &c->got, c->b_from, r, NULL), 0);
		c->b_from = r + 1;
	}
}

static void exactness(enum dirty_backend backend, uint32_t ring_bytes)
{
	struct runner run = { 0 };
	struct exact_ctx c = { .b_from = 1 };
	struct dirty_stats st;
	bool logging;

	run.vm = vm_for(backend, ring_bytes);
	sync_global_to_guest(run.vm, writes_per_round);
	c.a = dirty__subscribe(&run.vm->dirty, "A", false);
	c.b = dirty__subscribe(&run.vm->dirty, "B", false);
	assert_true(c.a >= 0 && c.b >= 0);
	assert_int_equal(bitmap_init(&c.got, run.vm->dirty.nr_pages), 0);
	run_rounds(&run, ROUNDS, exact_at_sync, &c);
	dirty__get_stats(&run.vm->dirty, &st, &logging);
	print_message("# %s: %llu harvests, %llu pages, %llu ring-full exits\n",
		      dirty__backend_name(run.vm->dirty.backend),
		      (unsigned long long)st.harvests, (unsigned long long)st.pages_harvested,
		      (unsigned long long)st.ring_full_exits);
	if (ring_bytes)
		assert_true(st.ring_full_exits > 0);	/* the small ring really filled */
	bitmap_free(&c.got);
	kvm__destroy(run.vm);
}

static void test_exact_bitmap(void **unused) { exactness(DIRTY_BITMAP, 0); }
static void test_exact_clear(void **unused) { exactness(DIRTY_CLEAR, 0); }
static void test_exact_ring(void **unused) { exactness(DIRTY_RING, 0); }

/* 256 entries per vCPU against 600 writes per round: several ring-full exits a round. */
static void test_exact_ring_full(void **unused) { exactness(DIRTY_RING, 4096); }

/* VMM writes and the on/off switch, on each backend. */
struct toggle_ctx {
	int a;
	struct bitmap got, vmm;
	enum { T_NORMAL, T_GAP } expect;
};

static void toggle_at_sync(struct runner *run, uint64_t r, void *p)
{
	struct toggle_ctx *c = p;
	struct kvm *vm = run->vm;
	int64_t n = dirty__read(&vm->dirty, c->a, &c->got);

	assert_true(n >= 0);
	if (c->expect == T_GAP) {
		/* Logging was off for a while: the subscriber gets everything. */
		assert_int_equal((uint64_t)n, vm->dirty.nr_pages);
		c->expect = T_NORMAL;
	} else {
		assert_int_equal(compare_rounds(vm, &c->got, r, r, &c->vmm), 0);
	}
	bitmap_clear_all(&c->vmm);
	if (r == 3) {
		/* The VMM writes two pages nobody else touches: reported next round. */
		uint64_t v = 0x5eed, gpa1 = LO_BASE - 2 * KM_PAGE_SIZE, gpa2 = HI_BASE + (HI_PAGES - 1) * KM_PAGE_SIZE;

		assert_int_equal(memory__write(&vm->mem, gpa1, &v, sizeof(v)), 0);
		assert_int_equal(memory__write(&vm->mem, gpa2, &v, sizeof(v)), 0);
		bitmap_set(&c->vmm, memory__page_of(&vm->mem, gpa1));
		bitmap_set(&c->vmm, memory__page_of(&vm->mem, gpa2));
	}
}

static void *toggle_while_running(void *p)
{
	struct kvm *vm = p;

	/* Off and on again while the vCPUs are in the middle of a round. */
	assert_int_equal(dirty__set_mode(&vm->dirty, DIRTY_LOG_OFF), 0);
	assert_int_equal(dirty__set_mode(&vm->dirty, DIRTY_LOG_AUTO), 0);
	return NULL;
}

struct toggle_runner_ctx {
	struct toggle_ctx t;
	pthread_t th;
	bool toggled;
};

static void toggle_outer_at_sync(struct runner *run, uint64_t r, void *p)
{
	struct toggle_runner_ctx *c = p;

	if (c->toggled) {
		pthread_join(c->th, NULL);
		c->toggled = false;
	}
	toggle_at_sync(run, r, &c->t);
	if (r == 6) {
		/* Starts toggling; the vCPUs are released right after this returns. */
		c->t.expect = T_GAP;
		pthread_create(&c->th, NULL, toggle_while_running, run->vm);
		c->toggled = true;
	}
}

static void toggle_and_vmm_writes(enum dirty_backend backend)
{
	struct runner run = { 0 };
	struct toggle_runner_ctx c = { 0 };
	struct dirty_stats st;
	bool logging;

	run.vm = vm_for(backend, 0);
	sync_global_to_guest(run.vm, writes_per_round);
	c.t.a = dirty__subscribe(&run.vm->dirty, "A", false);
	assert_true(c.t.a >= 0);
	assert_int_equal(bitmap_init(&c.t.got, run.vm->dirty.nr_pages), 0);
	assert_int_equal(bitmap_init(&c.t.vmm, run.vm->dirty.nr_pages), 0);
	run_rounds(&run, ROUNDS, toggle_outer_at_sync, &c);
	dirty__get_stats(&run.vm->dirty, &st, &logging);
	assert_true(st.vmm_pages >= 2);
	assert_true(logging);
	dirty__unsubscribe(&run.vm->dirty, c.t.a);
	dirty__get_stats(&run.vm->dirty, &st, &logging);
	assert_false(logging);	/* the last subscriber gone: the VM stops paying for it */
	bitmap_free(&c.t.got);
	bitmap_free(&c.t.vmm);
	kvm__destroy(run.vm);
}

static void test_toggle_bitmap(void **unused) { toggle_and_vmm_writes(DIRTY_BITMAP); }
static void test_toggle_clear(void **unused) { toggle_and_vmm_writes(DIRTY_CLEAR); }
static void test_toggle_ring(void **unused) { toggle_and_vmm_writes(DIRTY_RING); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_bitmap),
		cmocka_unit_test(test_exact_clear),
		cmocka_unit_test(test_exact_ring),
		cmocka_unit_test(test_exact_ring_full),
		cmocka_unit_test(test_toggle_bitmap),
		cmocka_unit_test(test_toggle_clear),
		cmocka_unit_test(test_toggle_ring),
	};

	kvm_test_require_kvm();
	log_init("test-dirty", LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
