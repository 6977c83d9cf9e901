/*
 * Runs the real workload images (kvm/guest/NAME.bin) on the host, without
 * KVM: each vCPU is a thread that jumps to the image's first byte at
 * KM_IMAGE_GPA with the entry registers of abi.h. At user level the
 * guests' `in` hypercalls raise #GP, which arrives as SIGSEGV; the handler
 * plays the VMM (with kvm-run's request semantics: a check stays pending
 * for a vCPU until it answers) and resumes after the instruction. Any
 * other fault fails the test with the faulting address, as it would stop
 * the VM. The boot info is mapped read-only, as in a VM.
 *
 * This checks what a unit test cannot: entry and stack, argument handling,
 * memory placement over two free ranges, progress cadence, pacing, and
 * verify's check end to end, including detection of corrupted pages.
 * Timing checks are loose: the host may be loaded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <cmocka.h>

#include "abi.h"
#include "gmem.h"
#include "vpage.h"

/* The hypercall of hypercall.h: movl (%rcx), %eax, at an MMIO address. */
#define OP_MOV_LOAD32	0x8b
#define MODRM_EAX_RCX	0x01
#define RANGE_SIZE	(8ULL << 20)	/* two free ranges of 8 MiB */
#define CONSOLE_SIZE	65536

enum vcpu_state { VCPU_RUNNING, VCPU_DONE, VCPU_FAILED, VCPU_STOPPED };

struct vcpu {
	unsigned int id;
	pthread_t thread;
	sigjmp_buf exit_jb;
	uint8_t *stack;
	void *altstack;
	_Atomic int state;
	_Atomic uint64_t counter;
	_Atomic uint64_t reports;
	_Atomic uint64_t hypercalls;
	uint64_t last_report_ns;
	_Atomic uint64_t max_report_gap_ns;
	uint64_t done_status;
	int answered;
	char msg[256];
};

struct vm {
	unsigned int nr;
	struct km_boot_info *bi;
	uint8_t *ranges[2];
	struct vcpu cpu[KM_MAX_VCPUS];
	_Atomic int stop;
	pthread_mutex_t lock;
	int check_req;			/* under lock */
	unsigned int check_answers;
	uint64_t check_pages, check_bad;
	char console[CONSOLE_SIZE];
	size_t console_len;
};

static struct vm *vm;			/* the one running VM */
static __thread struct vcpu *self;	/* the vCPU of this thread */
static uint64_t tsc_khz;
static const char *image_dir;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static uint64_t measure_tsc_khz(void)
{
	uint64_t t0 = now_ns(), c0 = __builtin_ia32_rdtsc(), t1, c1;

	sleep_ms(100);
	t1 = now_ns();
	c1 = __builtin_ia32_rdtsc();
	return (c1 - c0) * 1000000ULL / (t1 - t0);
}

/* The VMM side of one hypercall; returns the value for EAX. */
static uint32_t hypercall(struct vcpu *c, unsigned int nr, uint64_t a0, uint64_t a1,
			  uint64_t a2)
{
	uint64_t t, gap, end;
	uint32_t req;

	atomic_fetch_add(&c->hypercalls, 1);
	switch (nr) {
	case KM_HC_CONSOLE:
		pthread_mutex_lock(&vm->lock);
		if (a1 <= 4096 && vm->console_len + a1 < CONSOLE_SIZE) {
			memcpy(vm->console + vm->console_len, (const void *)a0, a1);
			vm->console_len += a1;
			vm->console[vm->console_len] = 0;
		}
		pthread_mutex_unlock(&vm->lock);
		break;
	case KM_HC_PROGRESS:
		t = now_ns();
		if (c->last_report_ns) {
			gap = t - c->last_report_ns;
			if (gap > atomic_load(&c->max_report_gap_ns))
				atomic_store(&c->max_report_gap_ns, gap);
		}
		c->last_report_ns = t;
		atomic_store(&c->counter, a0);
		atomic_fetch_add(&c->reports, 1);
		(void)a2;
		break;
	case KM_HC_SLEEP:
		end = now_ns() + (a0 > 1000000 ? 1000000 : a0) * 1000;
		while (now_ns() < end && !atomic_load(&vm->stop)) {
			pthread_mutex_lock(&vm->lock);
			req = vm->check_req && !c->answered;
			pthread_mutex_unlock(&vm->lock);
			if (req)
				break;
			sleep_ms(1);
		}
		break;
	case KM_HC_CHECK_RESULT:
		pthread_mutex_lock(&vm->lock);
		if (vm->check_req && !c->answered) {
			c->answered = 1;
			vm->check_pages += a0;
			vm->check_bad += a1;
			vm->check_answers++;
		}
		pthread_mutex_unlock(&vm->lock);
		break;
	case KM_HC_DONE:
		c->done_status = a0;
		atomic_store(&c->state, VCPU_DONE);
		siglongjmp(c->exit_jb, 1);
	case KM_HC_FAIL:
		snprintf(c->msg, sizeof(c->msg), "%.*s", (int)(a1 < 255 ? a1 : 255),
			 (const char *)a0);
		atomic_store(&c->state, VCPU_FAILED);
		siglongjmp(c->exit_jb, 1);
	default:
		snprintf(c->msg, sizeof(c->msg), "unexpected hypercall %u", nr);
		atomic_store(&c->state, VCPU_FAILED);
		siglongjmp(c->exit_jb, 1);
	}
	if (atomic_load(&vm->stop)) {
		atomic_store(&c->state, VCPU_STOPPED);
		siglongjmp(c->exit_jb, 1);
	}
	pthread_mutex_lock(&vm->lock);
	req = vm->check_req && !c->answered ? KM_REQ_CHECK : KM_REQ_NONE;
	pthread_mutex_unlock(&vm->lock);
	return req;
}

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
	ucontext_t *uc = ctx;
	greg_t *g = uc->uc_mcontext.gregs;
	const uint8_t *rip = (const uint8_t *)g[REG_RIP];
	struct vcpu *c = self;
	uint64_t addr = (uint64_t)g[REG_RCX];

	(void)sig;
	if (!c)
		abort();	/* a fault in the harness itself */
	if ((uintptr_t)rip < KM_IMAGE_GPA || (uintptr_t)rip >= KM_IMAGE_GPA + KM_IMAGE_MAX ||
	    rip[0] != OP_MOV_LOAD32 || rip[1] != MODRM_EAX_RCX || addr < KM_MMIO_HC ||
	    addr >= KM_MMIO_HC + 4 * KM_PORT_HC_COUNT || (addr - KM_MMIO_HC) % 4) {
		snprintf(c->msg, sizeof(c->msg), "fault at rip %p, address %p", (void *)rip,
			 si->si_addr);
		atomic_store(&c->state, VCPU_FAILED);
		siglongjmp(c->exit_jb, 1);
	}
	g[REG_RAX] = hypercall(c, (unsigned int)((addr - KM_MMIO_HC) / 4), (uint64_t)g[REG_RDI],
			       (uint64_t)g[REG_RSI], (uint64_t)g[REG_R8]);
	g[REG_RIP] += 2;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *c = arg;
	stack_t ss = { .ss_sp = c->altstack, .ss_size = 65536 };
	uint64_t top = (uint64_t)(c->stack + KM_STACK_SIZE);

	self = c;
	sigaltstack(&ss, NULL);
	if (sigsetjmp(c->exit_jb, 1) == 0) {
		/* The entry state of abi.h: RSP at the stack top, RDI, RSI. */
		asm volatile("mov %0, %%rsp\n\t"
			     "jmp *%3"
			     : : "r"(top), "D"(vm->bi), "S"((uint64_t)c->id),
			       "r"((uint64_t)KM_IMAGE_GPA)
			     : "memory");
		__builtin_unreachable();
	}
	return NULL;
}

static int load_image(const char *name)
{
	char path[4096];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s.bin", image_dir, name);
	memset((void *)KM_IMAGE_GPA, 0, KM_IMAGE_MAX);
	f = fopen(path, "rb");
	if (!f)
		return -1;
	n = fread((void *)KM_IMAGE_GPA, 1, KM_IMAGE_MAX, f);
	fclose(f);
	return n > 0 ? 0 : -1;
}

/* Installed for every VM: cmocka puts its own SIGSEGV handler in place per test. */
static void trap_hypercalls(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGSEGV, &sa, NULL), 0);
}

static struct vm *vm_start(const char *name, const char *args, unsigned int nr)
{
	unsigned int i;
	struct vcpu *c;

	trap_hypercalls();
	assert_int_equal(load_image(name), 0);
	vm = calloc(1, sizeof(*vm));
	assert_non_null(vm);
	pthread_mutex_init(&vm->lock, NULL);
	vm->nr = nr;
	vm->bi = mmap(NULL, KM_PAGE_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(vm->bi != MAP_FAILED);
	for (i = 0; i < 2; i++) {
		vm->ranges[i] = mmap(NULL, RANGE_SIZE, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		assert_true(vm->ranges[i] != MAP_FAILED);
		vm->bi->free[i].start = (uint64_t)vm->ranges[i];
		vm->bi->free[i].len = RANGE_SIZE;
	}
	vm->bi->magic = KM_BOOT_MAGIC;
	vm->bi->version = KM_BOOT_VERSION;
	vm->bi->mem_size = 2 * RANGE_SIZE + KM_FREE_GPA;
	vm->bi->nr_vcpus = nr;
	vm->bi->tsc_khz = tsc_khz;
	vm->bi->nr_ranges = 2;
	snprintf(vm->bi->guest, sizeof(vm->bi->guest), "%s", name);
	snprintf(vm->bi->args, sizeof(vm->bi->args), "%s", args);
	assert_int_equal(mprotect(vm->bi, KM_PAGE_SIZE, PROT_READ), 0);
	for (i = 0; i < nr; i++) {
		c = &vm->cpu[i];
		c->id = i;
		c->stack = malloc(KM_STACK_SIZE);
		c->altstack = malloc(65536);
		assert_non_null(c->stack);
		assert_non_null(c->altstack);
		atomic_store(&c->state, VCPU_RUNNING);
	}
	for (i = 0; i < nr; i++)
		assert_int_equal(pthread_create(&vm->cpu[i].thread, NULL, vcpu_thread,
						&vm->cpu[i]), 0);
	return vm;
}

/* Stops the vCPUs at their next hypercall; fails if one never makes one. */
static void vm_stop(struct vm *v)
{
	struct timespec ts;
	unsigned int i;

	atomic_store(&v->stop, 1);
	for (i = 0; i < v->nr; i++) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		if (pthread_timedjoin_np(v->cpu[i].thread, NULL, &ts) != 0) {
			fprintf(stderr, "vCPU %u made no hypercall for 5 s\n", i);
			_exit(1);	/* it spins in guest code: nothing can stop it */
		}
	}
}

static void vm_free(struct vm *v)
{
	unsigned int i;

	for (i = 0; i < v->nr; i++) {
		free(v->cpu[i].stack);
		free(v->cpu[i].altstack);
	}
	munmap(v->bi, KM_PAGE_SIZE);
	munmap(v->ranges[0], RANGE_SIZE);
	munmap(v->ranges[1], RANGE_SIZE);
	pthread_mutex_destroy(&v->lock);
	free(v);
	vm = NULL;
}

static void vm_print_console(struct vm *v)
{
	const char *p, *nl;

	pthread_mutex_lock(&v->lock);
	for (p = v->console; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl)
			nl = p + strlen(p) - 1;
		print_message("# console: %.*s\n", (int)(nl - p), p);
	}
	pthread_mutex_unlock(&v->lock);
}

static uint64_t vm_counter(struct vm *v)
{
	uint64_t sum = 0;
	unsigned int i;

	for (i = 0; i < v->nr; i++)
		sum += atomic_load(&v->cpu[i].counter);
	return sum;
}

/* Waits until the vCPUs' counters add up to at least want; 0 or -1 on timeout. */
static int vm_wait_counter(struct vm *v, uint64_t want, unsigned int timeout_ms)
{
	uint64_t end = now_ns() + timeout_ms * 1000000ULL;

	while (vm_counter(v) < want) {
		if (now_ns() > end)
			return -1;
		sleep_ms(5);
	}
	return 0;
}

/* Waits until every vCPU left the guest (done or failed). */
static int vm_wait_exit(struct vm *v, unsigned int timeout_ms)
{
	uint64_t end = now_ns() + timeout_ms * 1000000ULL;
	unsigned int i;

	for (i = 0; i < v->nr; i++)
		while (atomic_load(&v->cpu[i].state) == VCPU_RUNNING) {
			if (now_ns() > end)
				return -1;
			sleep_ms(5);
		}
	for (i = 0; i < v->nr; i++)
		pthread_join(v->cpu[i].thread, NULL);
	return 0;
}

/* kvm-run's `check`: ask every vCPU, wait for all answers. */
static int vm_check(struct vm *v, uint64_t *pages, uint64_t *bad)
{
	uint64_t end = now_ns() + 10000000000ULL;
	unsigned int i, answers;

	pthread_mutex_lock(&v->lock);
	for (i = 0; i < v->nr; i++)
		v->cpu[i].answered = 0;
	v->check_answers = 0;
	v->check_pages = v->check_bad = 0;
	v->check_req = 1;
	pthread_mutex_unlock(&v->lock);
	do {
		sleep_ms(5);
		pthread_mutex_lock(&v->lock);
		answers = v->check_answers;
		pthread_mutex_unlock(&v->lock);
	} while (answers < v->nr && now_ns() < end);
	pthread_mutex_lock(&v->lock);
	v->check_req = 0;
	*pages = v->check_pages;
	*bad = v->check_bad;
	pthread_mutex_unlock(&v->lock);
	return answers == v->nr ? 0 : -1;
}

static void assert_reports_regularly(struct vm *v)
{
	unsigned int i;
	uint64_t gap;

	for (i = 0; i < v->nr; i++) {
		gap = atomic_load(&v->cpu[i].max_report_gap_ns);
		print_message("# vCPU %u: %llu reports, longest gap %llu ms, counter %llu\n", i,
			      (unsigned long long)atomic_load(&v->cpu[i].reports),
			      (unsigned long long)(gap / 1000000),
			      (unsigned long long)atomic_load(&v->cpu[i].counter));
		assert_true(atomic_load(&v->cpu[i].reports) >= 2);
		/* 100 ms by contract; the slack is for a loaded host. */
		assert_true(gap < 400000000ULL);
	}
}

static void assert_all_running(struct vm *v)
{
	unsigned int i;

	for (i = 0; i < v->nr; i++)
		if (atomic_load(&v->cpu[i].state) != VCPU_RUNNING)
			fail_msg("vCPU %u stopped: %s", i, v->cpu[i].msg);
}

static int all_zero(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

static void test_idle(void **state)
{
	struct vm *v = vm_start("idle", "", 2);

	(void)state;
	sleep_ms(600);
	assert_all_running(v);
	vm_stop(v);
	vm_print_console(v);
	assert_reports_regularly(v);
	assert_true(vm_counter(v) >= 4);	/* 90 ms sleeps */
	assert_non_null(strstr(v->console, "idle[0]: 2 vCPUs"));
	vm_free(v);
}

static void test_compute(void **state)
{
	struct vm *v = vm_start("compute", "iters=3000000", 3);
	unsigned int i;
	char want[64];

	(void)state;
	assert_int_equal(vm_wait_exit(v, 20000), 0);
	vm_print_console(v);
	for (i = 0; i < 3; i++) {
		assert_int_equal(atomic_load(&v->cpu[i].state), VCPU_DONE);
		assert_true(v->cpu[i].done_status == 0);
		assert_true(atomic_load(&v->cpu[i].counter) == 3000000);
		snprintf(want, sizeof(want), "compute[%u]: done: 3000000 steps", i);
		assert_non_null(strstr(v->console, want));
	}
	vm_free(v);
}

static void test_fill(void **state)
{
	static const char *const patterns[] = { "random", "text", "zero" };
	uint64_t pages = 2 * RANGE_SIZE / KM_PAGE_SIZE;
	char args[64];
	unsigned int p;
	struct vm *v;

	(void)state;
	for (p = 0; p < 3; p++) {
		snprintf(args, sizeof(args), "pattern=%s", patterns[p]);
		v = vm_start("fill", args, 3);
		assert_int_equal(vm_wait_counter(v, pages, 20000), 0);
		sleep_ms(100);
		assert_all_running(v);	/* idling now */
		vm_stop(v);
		vm_print_console(v);
		assert_true(vm_counter(v) == pages);
		if (p == 0) {
			/* Both ranges written, first and last page. */
			assert_false(all_zero(v->ranges[0], KM_PAGE_SIZE));
			assert_false(all_zero(v->ranges[1] + RANGE_SIZE - KM_PAGE_SIZE,
					      KM_PAGE_SIZE));
		} else if (p == 1) {
			assert_memory_equal(v->ranges[1], "page 0x", 7);
			assert_non_null(memmem(v->ranges[0] + 5 * KM_PAGE_SIZE, KM_PAGE_SIZE,
					       "dirty", 5));
		} else {
			assert_true(all_zero(v->ranges[0], RANGE_SIZE));
		}
		vm_free(v);
	}

	/* size= writes that much from the start of free memory, no more. */
	v = vm_start("fill", "size=1M,pattern=random", 2);
	assert_int_equal(vm_wait_counter(v, 256, 20000), 0);
	sleep_ms(100);
	vm_stop(v);
	assert_true(vm_counter(v) == 256);
	assert_false(all_zero(v->ranges[0] + (1 << 20) - KM_PAGE_SIZE, KM_PAGE_SIZE));
	assert_true(all_zero(v->ranges[0] + (1 << 20), RANGE_SIZE - (1 << 20)));
	vm_free(v);
}

static void run_dirtier(const char *pattern)
{
	char args[128];
	struct vm *v;
	uint64_t n, i, touched = 0, t0, ms;

	snprintf(args, sizeof(args), "rate=5000,wss=4M,pattern=%s,seed=7", pattern);
	t0 = now_ns();
	v = vm_start("dirtier", args, 2);
	sleep_ms(1000);
	assert_all_running(v);
	vm_stop(v);
	ms = (now_ns() - t0) / 1000000;
	vm_print_console(v);
	assert_reports_regularly(v);
	n = vm_counter(v);
	print_message("# dirtier %s: %llu pages in %llu ms at rate=5000\n", pattern,
		      (unsigned long long)n, (unsigned long long)ms);
	/* Never faster than asked (plus the 10 ms catch-up); slower only if starved. */
	assert_true(n <= 5 * ms + 100);
	assert_true(n >= 1000);
	/* Only the working set is written: the first 4 MiB of range 0. */
	assert_true(all_zero(v->ranges[0] + (4 << 20), RANGE_SIZE - (4 << 20)));
	assert_true(all_zero(v->ranges[1], RANGE_SIZE));
	for (i = 0; i < 1024; i++)
		touched += !all_zero(v->ranges[0] + i * KM_PAGE_SIZE, KM_PAGE_SIZE);
	print_message("# dirtier %s: %llu of 1024 pages touched\n", pattern,
		      (unsigned long long)touched);
	if (!strcmp(pattern, "sequential")) {
		/* 2 vCPUs walking 512 pages each from the start of their shares. */
		assert_true(touched == 1024 || n < 1024);
		assert_false(all_zero(v->ranges[0] + 512 * KM_PAGE_SIZE, KM_PAGE_SIZE));
	} else if (!strcmp(pattern, "zipf")) {
		assert_true(touched < 1000);	/* skewed: many pages never hit */
	}
	vm_free(v);
}

static void test_dirtier(void **state)
{
	struct vm *v;

	(void)state;
	run_dirtier("uniform");
	run_dirtier("sequential");
	run_dirtier("hotcold");
	run_dirtier("zipf");

	/* Unlimited rate over all free memory (both ranges). */
	v = vm_start("dirtier", "", 2);
	sleep_ms(500);
	vm_stop(v);
	assert_reports_regularly(v);
	print_message("# dirtier unlimited: %llu pages in ~0.5 s\n",
		      (unsigned long long)vm_counter(v));
	assert_true(vm_counter(v) > 10000);
	assert_false(all_zero(v->ranges[1], RANGE_SIZE));
	vm_free(v);
}

static void test_bad_args(void **state)
{
	static const struct { const char *guest, *args, *msg; } cases[] = {
		{ "dirtier", "wss=12X", "wss=12X: not a size" },
		{ "dirtier", "rate=fast", "rate=fast: not a decimal number" },
		{ "dirtier", "pattern=random", "pattern=random: unknown value" },
		{ "dirtier", "wss=1G", "wss=1G: outside" },
		{ "verify", "wss=1G", "do not fit" },
		{ "dirtier", "wsss=1M", "argument 'wsss=1M' is not key=value with a known key" },
		{ "idle", "x=1", "argument 'x=1'" },
		{ "compute", "iters", "argument 'iters'" },
	};
	unsigned int i;
	struct vm *v;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		v = vm_start(cases[i].guest, cases[i].args, 1);
		assert_int_equal(vm_wait_exit(v, 5000), 0);
		print_message("# %s %s: %s\n", cases[i].guest, cases[i].args, v->cpu[0].msg);
		assert_int_equal(atomic_load(&v->cpu[0].state), VCPU_FAILED);
		if (!strstr(v->cpu[0].msg, cases[i].msg))
			fail_msg("'%s' lacks '%s'", v->cpu[0].msg, cases[i].msg);
		vm_free(v);
	}
}

static void test_verify(void **state)
{
	struct km_mem_range r[2];
	uint64_t pages, bad, t, n, w, written, unwritten, *page;
	volatile uint64_t *table;
	struct gmem m;
	struct vm *v;

	(void)state;
	v = vm_start("verify", "count=3000,pattern=uniform", 3);
	assert_int_equal(vm_wait_counter(v, 3000, 20000), 0);
	sleep_ms(200);
	assert_all_running(v);
	assert_true(vm_counter(v) == 3000);	/* stopped writing */

	/* The layout the guest computed, from the same code. */
	r[0] = v->bi->free[0];
	r[1] = v->bi->free[1];
	gmem_init(&m, r, 2);
	assert_int_equal(gmem_verify_layout(&m, 0, &t, &n), 0);
	table = (volatile uint64_t *)m.start[0];
	written = unwritten = UINT64_MAX;
	for (w = 0; w < n; w++) {
		if (table[w] && written == UINT64_MAX)
			written = w;
		if (!table[w] && unwritten == UINT64_MAX)
			unwritten = w;
	}
	assert_true(written != UINT64_MAX && unwritten != UINT64_MAX);

	assert_int_equal(vm_check(v, &pages, &bad), 0);
	assert_true(pages == n);
	assert_true(bad == 0);

	/* A flipped byte in a written page, then in a never-written one. */
	page = (uint64_t *)gmem_gpa(&m, t + written);
	((uint8_t *)page)[1000] ^= 0x40;
	assert_int_equal(vm_check(v, &pages, &bad), 0);
	assert_true(bad == 1);
	page = (uint64_t *)gmem_gpa(&m, t + unwritten);
	page[511] = 1;
	assert_int_equal(vm_check(v, &pages, &bad), 0);
	assert_true(bad == 2);
	/* A lost table update: the entry goes back one version. */
	for (w = written + 1; w < n && !table[w]; w++)
		;
	assert_true(w < n);
	table[w]--;
	assert_int_equal(vm_check(v, &pages, &bad), 0);
	assert_true(bad == 3);
	assert_true(pages == n);
	assert_all_running(v);
	vm_stop(v);
	vm_print_console(v);
	assert_non_null(strstr(v->console, "bad page"));
	vm_free(v);

	/* A check while writing, repeatedly: never a false alarm. */
	v = vm_start("verify", "wss=2M,pattern=zipf,rate=20000", 2);
	for (w = 0; w < 5; w++) {
		sleep_ms(100);
		assert_int_equal(vm_check(v, &pages, &bad), 0);
		assert_true(pages == 512);
		assert_true(bad == 0);
	}
	assert_all_running(v);
	vm_stop(v);
	assert_reports_regularly(v);
	vm_free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle),
		cmocka_unit_test(test_compute),
		cmocka_unit_test(test_fill),
		cmocka_unit_test(test_dirtier),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_bad_args),
	};
	const char *top = getenv("top_builddir");
	static char dir[4096];
	void *img;

	snprintf(dir, sizeof(dir), "%s/kvm/guest", top ? top : ".");
	image_dir = dir;
	img = mmap((void *)KM_IMAGE_GPA, KM_IMAGE_MAX, PROT_READ | PROT_WRITE | PROT_EXEC,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (img != (void *)KM_IMAGE_GPA) {
		printf("1..0 # SKIP cannot map the image area at 0x%llx\n", KM_IMAGE_GPA);
		return 0;
	}
	tsc_khz = measure_tsc_khz();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
