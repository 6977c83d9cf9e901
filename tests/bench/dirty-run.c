/*
 * One configuration of the dirty-logging benchmark. See dirty-run.h.
 *
 * The structure is tests/kvm/test-dirty.c's: one host thread per vCPU runs
 * it to its next sync point (kvm_cpu__run_until_ucall) and meets the main
 * thread at a barrier, so every harvest happens while no vCPU is in
 * KVM_RUN, as in dirty_log_perf_test. The main thread's clock runs from
 * releasing the vCPUs to the last one's sync: a pass's wall time, ucall
 * exits included (one per vCPU, nothing beside hundreds of thousands of
 * page writes).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tests/lib/kvm_test.h"
#include "tests/bench/dirty-run.h"

/*
 * The pages the guest writes: from 16 MiB (above this binary's image,
 * which the guest runs from; checked against _end) to the 3 GiB hole, then
 * from 4 GiB to the end of RAM.
 */
#define TEST_BASE	(16ULL << 20)
#define PLAN_MAX	64

static const unsigned int frac_stride[BENCH_NR_FRACS] = { 1, 10, 100 };

/* What the guest does, synced into it once before it runs. */
struct guest_plan {
	uint64_t lo_pages;		/* test pages below the hole */
	uint64_t share;			/* pages per vCPU: vCPU v has [v*share, (v+1)*share) */
	uint64_t stride[PLAN_MAX];	/* iteration i writes every stride[i]-th page */
};

static struct guest_plan plan;

extern char _end[];	/* the linker's end of this (non-PIE) binary's image */

static inline uint64_t test_page_gpa(uint64_t i)
{
	return i < plan.lo_pages ? TEST_BASE + i * KM_PAGE_SIZE
				 : KM_HIGH_GPA + (i - plan.lo_pages) * KM_PAGE_SIZE;
}

/* Guest code: plain C, no libc. Iteration it writes the value it. */
static void guest_writer(const struct km_boot_info *bi, unsigned long vcpu)
{
	uint64_t it, i, end, stride;

	for (it = 1;; it++) {
		stride = it < PLAN_MAX ? plan.stride[it] : 1;
		end = (vcpu + 1) * plan.share;
		for (i = vcpu * plan.share; i < end; i += stride)
			*(volatile uint64_t *)test_page_gpa(i) = it;
		KM_GUEST_SYNC(it);
	}
}

struct runner {
	struct kvm *vm;
	unsigned int nr_vcpus;
	pthread_t th[KM_MAX_VCPUS];
	unsigned int nr_threads;
	pthread_barrier_t go, done;
	atomic_int quit;
	uint64_t iteration;		/* the last one finished */
	int err[KM_MAX_VCPUS];
	uint64_t stage[KM_MAX_VCPUS];
};

struct vcpu_arg {
	struct runner *run;
	unsigned int id;
};

static struct vcpu_arg vcpu_args[KM_MAX_VCPUS];

static void *runner__vcpu(void *p)
{
	struct vcpu_arg *a = p;
	struct runner *run = a->run;
	struct km_ucall uc;
	int r;

	for (;;) {
		pthread_barrier_wait(&run->go);
		if (atomic_load(&run->quit))
			return NULL;
		r = kvm_cpu__run_until_ucall(run->vm->cpus[a->id], &uc);
		if (r == 0 && uc.cmd != KM_UCALL_SYNC)
			r = KM_ERR_GUEST;
		run->err[a->id] = r;
		run->stage[a->id] = r ? 0 : uc.args[0];
		pthread_barrier_wait(&run->done);
	}
}

static int runner__start(struct runner *run)
{
	unsigned int i;

	pthread_barrier_init(&run->go, NULL, run->nr_vcpus + 1);
	pthread_barrier_init(&run->done, NULL, run->nr_vcpus + 1);
	for (i = 0; i < run->nr_vcpus; i++) {
		vcpu_args[i].run = run;
		vcpu_args[i].id = i;
		if (pthread_create(&run->th[i], NULL, runner__vcpu, &vcpu_args[i]) != 0) {
			fprintf(stderr, "bench: cannot start vCPU thread %u\n", i);
			return KM_ERR_STATE;
		}
		run->nr_threads++;
	}
	return 0;
}

/* The vCPU threads wait at go (between passes) or are not there at all. */
static void runner__stop(struct runner *run)
{
	unsigned int i;

	if (!run->nr_threads)
		return;
	/*
	 * If a thread failed to start, the others wait at a barrier that can
	 * never fill: leave them there (the process is about to exit).
	 */
	if (run->nr_threads != run->nr_vcpus) {
		for (i = 0; i < run->nr_threads; i++)
			pthread_detach(run->th[i]);
		return;
	}
	atomic_store(&run->quit, 1);
	pthread_barrier_wait(&run->go);
	for (i = 0; i < run->nr_threads; i++)
		pthread_join(run->th[i], NULL);
	pthread_barrier_destroy(&run->go);
	pthread_barrier_destroy(&run->done);
}

/* Runs the next guest iteration on every vCPU. Returns its wall ns or an error. */
static int64_t runner__pass(struct runner *run)
{
	uint64_t t = kvm__now_ns();
	unsigned int i;

	pthread_barrier_wait(&run->go);
	pthread_barrier_wait(&run->done);
	t = kvm__now_ns() - t;
	run->iteration++;
	for (i = 0; i < run->nr_vcpus; i++) {
		if (run->err[i] || run->stage[i] != run->iteration) {
			fprintf(stderr, "bench: vCPU %u at iteration %llu: %s (stage %llu; VM: %s %s)\n",
				i, (unsigned long long)run->iteration,
				run->err[i] ? km_strerror(run->err[i]) : "out of step",
				(unsigned long long)run->stage[i],
				kvm__stop_reason_name(run->vm->stop_reason), run->vm->stop_detail);
			return run->err[i] ? run->err[i] : KM_ERR_STATE;
		}
	}
	return (int64_t)t;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorts v). */
static double median(double *v, unsigned int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Written pages of the last pass that the read did not report. */
static uint64_t missed_pages(struct runner *run, const struct bitmap *got, uint64_t stride)
{
	uint64_t v, i, missed = 0;

	for (v = 0; v < run->nr_vcpus; v++)
		for (i = v * plan.share; i < (v + 1) * plan.share; i += stride)
			if (!bitmap_test(got, memory__page_of(&run->vm->mem, test_page_gpa(i))))
				missed++;
	return missed;
}

/* Plain passes with logging off; the median rate in pages/s. */
static int passes_off(struct runner *run, unsigned int passes, double *pps)
{
	double rate[PLAN_MAX];
	unsigned int p;
	int64_t t;

	for (p = 0; p < passes; p++) {
		if ((t = runner__pass(run)) < 0)
			return (int)t;
		rate[p] = (double)(plan.share * run->nr_vcpus) * 1e9 / (double)t;
	}
	*pps = median(rate, passes);
	return 0;
}

/* Passes at one dirty fraction, each followed by a read, logging on. */
static int passes_on(struct runner *run, int sub, unsigned int passes, struct bench_frac *f,
		     struct bitmap *got, uint64_t *missed)
{
	double rate[PLAN_MAX], read[PLAN_MAX], harvest[PLAN_MAX], dirty[PLAN_MAX];
	struct dirty_stats before, after;
	uint64_t written = 0, i, t0;
	double ring_full = 0;
	unsigned int p;
	bool logging;
	int64_t t, n;

	for (i = 0; i < plan.share; i += f->stride)
		written++;
	written *= run->nr_vcpus;
	for (p = 0; p < passes; p++) {
		dirty__get_stats(&run->vm->dirty, &before, &logging);
		if ((t = runner__pass(run)) < 0)
			return (int)t;
		t0 = kvm__now_ns();
		n = dirty__read(&run->vm->dirty, sub, got);
		read[p] = (double)(kvm__now_ns() - t0) / 1e6;
		if (n < 0) {
			fprintf(stderr, "bench: dirty__read: %s\n", km_strerror((int)n));
			return (int)n;
		}
		dirty__get_stats(&run->vm->dirty, &after, &logging);
		rate[p] = (double)written * 1e9 / (double)t;
		harvest[p] = (double)(after.harvest_ns_total - before.harvest_ns_total) / 1e6;
		dirty[p] = (double)n;
		ring_full += (double)(after.ring_full_exits - before.ring_full_exits);
		*missed += missed_pages(run, got, f->stride);
	}
	f->write_pps = median(rate, passes);
	f->read_ms = median(read, passes);
	f->harvest_ms = median(harvest, passes);
	f->dirty = (uint64_t)median(dirty, passes);
	f->ring_full = ring_full / passes;
	return 0;
}

/* Reads with no pass between them: what a harvest costs with nothing dirty. */
static int empty_reads(struct runner *run, int sub, unsigned int passes, struct bitmap *got,
		       double *harvest_ms)
{
	double harvest[PLAN_MAX];
	struct dirty_stats before, after;
	unsigned int p;
	bool logging;
	int64_t n;

	for (p = 0; p < passes; p++) {
		dirty__get_stats(&run->vm->dirty, &before, &logging);
		if ((n = dirty__read(&run->vm->dirty, sub, got)) < 0) {
			fprintf(stderr, "bench: dirty__read: %s\n", km_strerror((int)n));
			return (int)n;
		}
		dirty__get_stats(&run->vm->dirty, &after, &logging);
		harvest[p] = (double)(after.harvest_ns_total - before.harvest_ns_total) / 1e6;
	}
	*harvest_ms = median(harvest, passes);
	return 0;
}

/* Passes over every page are the long ones: they may be fewer. */
static unsigned int frac_passes(const struct bench_config *cfg, unsigned int f)
{
	return frac_stride[f] == 1 ? cfg->full_passes : cfg->passes;
}

/*
 * The iteration plan: populate, passes off, then passes at each fraction,
 * then one pass after logging went off; the host follows the same order.
 */
static int plan_make(const struct bench_config *cfg)
{
	uint64_t lo_end = cfg->mem < KM_HOLE_START ? cfg->mem : KM_HOLE_START;
	uint64_t hi = cfg->mem > KM_HOLE_START ? cfg->mem - KM_HOLE_START : 0;
	uint64_t pages;
	unsigned int it = 1, p, f;

	if (cfg->passes < 1 || cfg->full_passes < 1 ||
	    2 + 2 * cfg->full_passes + (BENCH_NR_FRACS - 1) * cfg->passes + 1 > PLAN_MAX) {
		fprintf(stderr, "bench: too many passes (at most %d in all)\n", PLAN_MAX - 3);
		return KM_ERR_INVALID;
	}
	if ((uint64_t)(uintptr_t)_end > TEST_BASE || lo_end <= TEST_BASE) {
		fprintf(stderr, "bench: the test pages (from %llu MiB) overlap the binary "
			"(ends at %p) or the guest is too small\n", TEST_BASE >> 20, (void *)_end);
		return KM_ERR_INVALID;
	}
	memset(&plan, 0, sizeof(plan));
	plan.lo_pages = (lo_end - TEST_BASE) / KM_PAGE_SIZE;
	pages = plan.lo_pages + hi / KM_PAGE_SIZE;
	/* Whole multiples of 100 pages per vCPU: every fraction is exact. */
	plan.share = pages / cfg->nr_vcpus / 100 * 100;
	plan.stride[it++] = 1;				/* populate */
	for (p = 0; p < cfg->full_passes; p++)
		plan.stride[it++] = 1;			/* logging off */
	for (f = 0; f < BENCH_NR_FRACS; f++)
		for (p = 0; p < frac_passes(cfg, f); p++)
			plan.stride[it++] = frac_stride[f];
	plan.stride[it++] = 1;				/* after logging went off */
	return 0;
}

int bench_run__config(const struct bench_config *cfg, struct bench_result *out)
{
	struct kvm_config kc = {
		.mem_size = cfg->mem, .nr_vcpus = cfg->nr_vcpus, .irqchip = true,
		.name = "bench", .dirty_backend = cfg->backend,
		.dirty_ring_bytes = cfg->ring_bytes,
	};
	struct runner run = { .nr_vcpus = cfg->nr_vcpus };
	struct bitmap got = { 0 };
	struct dirty_stats st;
	uint64_t start = kvm__now_ns(), t0;
	unsigned int f;
	bool logging;
	int64_t t;
	int r, sub = -1;

	memset(out, 0, sizeof(*out));
	if ((r = plan_make(cfg)) != 0)
		return r;
	out->test_pages = plan.share * cfg->nr_vcpus;
	run.vm = vm_create_with_code_cfg(&kc, (void (*)(void))guest_writer);
	sync_global_to_guest(run.vm, plan);
	if ((r = bitmap_init(&got, run.vm->dirty.nr_pages)) != 0)
		goto out_vm;
	if ((r = runner__start(&run)) != 0)
		goto out_threads;

	if ((t = runner__pass(&run)) < 0) {
		r = (int)t;
		goto out_threads;
	}
	out->populate_s = (double)t / 1e9;
	if ((r = passes_off(&run, cfg->full_passes, &out->write_off_pps)) != 0)
		goto out_threads;

	t0 = kvm__now_ns();
	sub = dirty__subscribe(&run.vm->dirty, "bench", false);
	out->subscribe_ms = (double)(kvm__now_ns() - t0) / 1e6;
	if (sub < 0) {
		fprintf(stderr, "bench: dirty__subscribe: %s\n", km_strerror(sub));
		r = sub;
		goto out_threads;
	}
	dirty__get_stats(&run.vm->dirty, &st, &logging);
	out->enable_ms = (double)st.enable_ns_last / 1e6;

	for (f = 0; f < BENCH_NR_FRACS; f++) {
		out->frac[f].stride = frac_stride[f];
		r = passes_on(&run, sub, frac_passes(cfg, f), &out->frac[f], &got, &out->missed);
		if (r)
			goto out_threads;
	}
	if ((r = empty_reads(&run, sub, cfg->passes, &got, &out->empty_harvest_ms)) != 0)
		goto out_threads;

	t0 = kvm__now_ns();
	dirty__unsubscribe(&run.vm->dirty, sub);
	out->disable_ms = (double)(kvm__now_ns() - t0) / 1e6;
	sub = -1;
	r = passes_off(&run, 1, &out->after_off_pps);
out_threads:
	if (r)
		kvm__request_stop(run.vm, KVM_STOP_QUIT, "benchmark failed");
	runner__stop(&run);
	if (sub >= 0)
		dirty__unsubscribe(&run.vm->dirty, sub);
	bitmap_free(&got);
out_vm:
	kvm__destroy(run.vm);
	if (!r)
		out->total_s = (double)(kvm__now_ns() - start) / 1e9;
	return r;
}
