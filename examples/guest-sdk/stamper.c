/*
 * stamper: an example workload guest written with the kvm-migrate guest
 * SDK (docs/guests.md s.8), built outside the kvm-migrate tree with
 * nothing but `pkg-config kvm-migrate-guest`.
 *
 * Each vCPU walks its share of a working set in order at a given rate and
 * stamps every page it visits with the number of its write (word 0) and
 * the page's frame number (word 1). After `writes` writes it checks that
 * every page of its share holds the stamp of the last write that visited
 * it, says so on the console and stops: a run that was migrated or
 * checkpointed and restored on the way proves no stamp was lost. The same
 * check answers kvm-migrate's `check` command at any time. The
 * progress counter (kvm-migrate's query-stats, the --trace CSV) is the
 * number of writes.
 *
 * Arguments (--guest-arg):
 *   rate=N     pages/s over all vCPUs (default 1000; 0: as fast as it can)
 *   wss=BYTES  working set, shared among the vCPUs (default 4M)
 *   writes=N   writes per vCPU before the check and the end (default 0:
 *              write forever)
 */
#include <kvm-migrate/guest/gmem.h>
#include <kvm-migrate/guest/runtime.h>

/* This vCPU's pages: [lo, lo + n) of the free memory. */
struct share {
	struct gmem m;
	uint64_t lo, n;
};

/* The stamp this vCPU's writes left on page i of its share: 0 if never written. */
static uint64_t last_stamp(uint64_t i, uint64_t n, uint64_t writes)
{
	if (i >= writes)
		return 0;
	return i + n * ((writes - 1 - i) / n) + 1;	/* write k stamps k + 1 on page k % n */
}

/*
 * Checks every page of the share against the writes made so far. The
 * runtime calls it on the VMM's KM_REQ_CHECK (kvm-migrate's `check`
 * command), which arrives only inside a hypercall, so between two writes.
 */
static void check_share(struct rt_cpu *c, uint64_t *pages, uint64_t *bad)
{
	const struct share *s = c->priv;
	uint64_t i, want;
	volatile uint64_t *p;

	*bad = 0;
	for (i = 0; i < s->n; i++) {
		p = (volatile uint64_t *)gmem_gpa(&s->m, s->lo + i);
		want = last_stamp(i, s->n, c->counter);
		if (p[0] != want || (want && p[1] != (uint64_t)p >> 12)) {
			if ((*bad)++ < 4)
				rt_printf(c, "page 0x%llx holds stamp %llu, want %llu\n",
					  (unsigned long long)(uint64_t)p,
					  (unsigned long long)p[0], (unsigned long long)want);
		}
		if ((i & 255) == 255)
			rt_tick(c);	/* a long check still reports */
	}
	*pages = s->n;
	rt_printf(c, "check: %llu pages, %llu bad\n", (unsigned long long)*pages,
		  (unsigned long long)*bad);
}

void guest_main(const struct km_boot_info *bi, unsigned int vcpu)
{
	static const char *const known[] = { "rate", "wss", "writes", NULL };
	struct rt_cpu c;
	struct share s;
	struct pace pace;
	uint64_t rate, avail, pages, writes, hi, checked, bad;
	volatile uint64_t *p;

	rt_init(&c, bi, vcpu, "stamper", known);
	gmem_init(&s.m, bi->free, bi->nr_ranges);
	if (s.m.total == 0)
		rt_panic(&c, "no free memory in the boot info");
	avail = s.m.total * KM_PAGE_SIZE;
	rate = rt_arg_u64(&c, "rate", 1000, 0, 1000000000);
	pages = rt_arg_size(&c, "wss", avail < (4 << 20) ? avail : 4 << 20, KM_PAGE_SIZE,
			    avail) / KM_PAGE_SIZE;
	writes = rt_arg_u64(&c, "writes", 0, 0, UINT64_MAX);
	gmem_share(pages, c.nr_vcpus, vcpu, &s.lo, &hi);
	s.n = hi - s.lo;
	c.check = check_share;	/* answers the `check` control command */
	c.priv = &s;
	if (vcpu == 0)
		rt_printf(&c, "%u vCPUs, %llu pages, %llu pages/s, %llu writes per vCPU\n",
			  c.nr_vcpus, (unsigned long long)pages, (unsigned long long)rate,
			  (unsigned long long)writes);
	if (s.n == 0) {
		rt_printf(&c, "no pages in this vCPU's share, idling\n");
		rt_idle(&c);
	}
	pace_init(&pace, c.tsc_khz * 1000, rate, c.nr_vcpus, vcpu, km_rdtsc());
	while (!writes || c.counter < writes) {
		rt_pace(&c, &pace);
		p = (volatile uint64_t *)gmem_gpa(&s.m, s.lo + c.counter % s.n);
		p[0] = c.counter + 1;
		p[1] = (uint64_t)p >> 12;
		c.counter++;
		rt_tick(&c);
	}
	rt_report(&c, km_rdtsc());	/* the final count, before the check */
	check_share(&c, &checked, &bad);
	if (bad)
		rt_panic(&c, "%llu of %llu pages lost their stamp", (unsigned long long)bad,
			 (unsigned long long)checked);
	rt_printf(&c, "done: %llu writes, %llu pages checked, all stamps there\n",
		  (unsigned long long)c.counter, (unsigned long long)checked);
	/* Returning ends this vCPU cleanly: the SDK's entry code calls km_done(0). */
}
