/*
 * The workload guests' runtime: boot-info checks, progress reports, the
 * answers to VMM requests, sleeping and pacing by TSC, console messages,
 * argument helpers and panic. Guest-only (it issues hypercalls); the pure
 * parts it builds on (fmt, args, pace...) are separate and host-tested.
 *
 * Every vCPU runs the same image over the same .data and .bss, so all
 * per-vCPU state lives in a struct rt_cpu on that vCPU's stack (or in
 * arrays indexed by vCPU), never in a plain global.
 *
 * The loop contract: a workload calls rt_tick() once per iteration of its
 * loop (a page written, a batch of hash steps, a sleep...). rt_tick
 * measures the gap since the previous tick, less the time the guest itself
 * asked to sleep in between (R8 of KM_HC_PROGRESS: what the guest felt as
 * a pause: how late it was against its own plan), and reports progress
 * every RT_REPORT_MS, handling
 * the request the VMM returns. An iteration must stay well below
 * RT_REPORT_MS; waits go through rt_wait_until() / rt_sleep_us(), which
 * tick too.
 */
#ifndef KM_GUEST_RUNTIME_H
#define KM_GUEST_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "abi.h"
#include "hypercall.h"
#include "pace.h"

#define RT_REPORT_MS	50	/* progress period: half of the ABI's 100 ms */
#define RT_IDLE_US	90000	/* one idle sleep; with the report, under 100 ms */
#define RT_SPIN_US	2000	/* waits shorter than this spin, longer ones sleep */

struct rt_cpu;

/* Checks this vCPU's pages for KM_REQ_CHECK; fills the two counts. */
typedef void rt_check_fn(struct rt_cpu *c, uint64_t *pages, uint64_t *bad);

struct rt_cpu {
	const struct km_boot_info *bi;
	const char *name;	/* workload name, prefix of messages */
	unsigned int vcpu, nr_vcpus;
	uint64_t tsc_khz;
	uint64_t counter;	/* the work counter reported with progress */
	uint64_t last;		/* TSC at the previous tick */
	uint64_t max_gap;	/* longest gap between ticks since the last report */
	uint64_t asleep;	/* ticks asked to sleep (and slept) since the last tick */
	uint64_t next_report;	/* TSC at which the next report is due */
	uint64_t report_ticks;
	rt_check_fn *check;	/* NULL: KM_REQ_CHECK is answered 0 pages, 0 bad */
	void *priv;		/* for check */
	int checking;		/* inside check: requests seen are that same check */
};

/*
 * Checks the boot info (magic, version, vCPU numbers, TSC rate) and that
 * every argument key is in known (NULL-terminated; NULL: no arguments),
 * and starts the report clock. Panics on any problem.
 */
void rt_init(struct rt_cpu *c, const struct km_boot_info *bi, unsigned int vcpu,
	     const char *name, const char *const *known);

/* Sends a progress report now and handles the returned request. */
void rt_report(struct rt_cpu *c, uint64_t now);

/* One iteration of the workload loop happened. Returns the TSC it read. */
static inline uint64_t rt_tick(struct rt_cpu *c)
{
	uint64_t now = km_rdtsc();
	/* A pause is what came on top of the sleeps the guest asked for. */
	int64_t gap = (int64_t)(now - c->last - c->asleep);

	c->asleep = 0;
	if ((int64_t)(now - c->last) < 0) {	/* the TSC went backwards: a restore elsewhere */
		gap = 0;
		c->next_report = now;
	}
	if (gap < 0)
		gap = 0;
	if ((uint64_t)gap > c->max_gap)
		c->max_gap = (uint64_t)gap;
	c->last = now;
	if ((int64_t)(now - c->next_report) >= 0)
		rt_report(c, now);
	return now;
}

/* rt_tick for callbacks (zipf_init's tick). */
void rt_tick_cb(void *c);

/*
 * Acts on a request returned by a hypercall: KM_REQ_CHECK runs c->check
 * and answers with KM_HC_CHECK_RESULT. Other values are ignored.
 */
void rt_request(struct rt_cpu *c, unsigned int req);

static inline uint64_t rt_us_to_tsc(const struct rt_cpu *c, uint64_t us)
{
	return us * c->tsc_khz / 1000;
}

/* KM_HC_SLEEP for up to us microseconds (may return early), then the request. */
void rt_sleep_us(struct rt_cpu *c, uint64_t us);

/* Returns once the TSC reaches deadline: sleeps if far, spins if near, ticking. */
void rt_wait_until(struct rt_cpu *c, uint64_t deadline);

/* Waits until the paced event is due and schedules the next one. */
static inline void rt_pace(struct rt_cpu *c, struct pace *p)
{
	uint64_t now, due;

	if (p->unlimited)
		return;
	now = km_rdtsc();
	due = pace_due_in(p, now);
	if (due)
		rt_wait_until(c, now + due);
	pace_advance(p);
}

/* Sleeps and reports forever, answering requests; the counter stays. */
__attribute__((noreturn)) void rt_idle(struct rt_cpu *c);

/* A console line "name[vcpu]: text"; the caller ends it with "\n". */
void rt_printf(struct rt_cpu *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Fails the VM (KM_HC_FAIL) with "name[vcpu]: text". c may be NULL. */
__attribute__((noreturn)) void rt_panic(const struct rt_cpu *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Arguments (args.h) with defaults; a present but invalid or out-of-range
 * value panics with a message naming the key, so a typo never runs a
 * different experiment than the one asked for.
 */
int rt_arg_has(const struct rt_cpu *c, const char *key);
uint64_t rt_arg_u64(const struct rt_cpu *c, const char *key, uint64_t def,
		    uint64_t min, uint64_t max);
/* Sizes with K/M/G/T suffixes, in bytes. */
uint64_t rt_arg_size(const struct rt_cpu *c, const char *key, uint64_t def,
		     uint64_t min, uint64_t max);
/* The index of the value in names (NULL-terminated), or def if absent. */
unsigned int rt_arg_choice(const struct rt_cpu *c, const char *key,
			   const char *const *names, unsigned int def);

/* The compiler may emit calls to these; there is no libc. */
void *memset(void *s, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* Each workload's entry, called by start.S on every vCPU. */
void guest_main(const struct km_boot_info *bi, unsigned int vcpu);

/* Called by start.S if guest_main returns: km_done(0). */
__attribute__((noreturn)) void rt_done(void);

#endif
