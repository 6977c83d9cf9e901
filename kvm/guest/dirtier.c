/*
 * dirtier: dirties pages at a controlled rate and pattern. The working set
 * (the first wss bytes of free memory) is split among the vCPUs in
 * contiguous shares; each vCPU writes one 8-byte word per chosen page of
 * its own share, at an offset that moves with every write and with a value
 * never written before (so the page really changes). Counter: pages
 * written by this vCPU.
 *
 * Arguments:
 *   rate=N        pages/s over all vCPUs, paced by TSC (default 0: as fast
 *                 as possible)
 *   wss=BYTES     working set (K/M/G suffixes; default: all free memory)
 *   pattern=P     sequential | uniform (default) | hotcold | zipf (pick.h)
 *   hot=PCT       hotcold: PCT% of the pages get 90% of the writes
 *                 (default 10)
 *   seed=N        PRNG seed (default 1); vCPU i uses stream (seed, i)
 *   compute=N     the first N vCPUs do not write: they run compute's hash
 *                 chain (counter: hash steps), so that one VM has a writer
 *                 and a computing vCPU side by side (default 0)
 */
#include "gmem.h"
#include "prng.h"
#include "workset.h"

#define COMPUTE_BATCH	4096	/* as compute.c: steps between ticks */

/* compute's loop: a vCPU that dirties almost nothing, its counter the steps done. */
static void __attribute__((noreturn)) dirtier_compute(struct rt_cpu *c, unsigned int vcpu)
{
	uint64_t x = vcpu + 1, i;

	for (;;) {
		for (i = 0; i < COMPUTE_BATCH; i++)
			x = prng_mix64(x);
		asm volatile("" : "+r"(x));
		c->counter += COMPUTE_BATCH;
		rt_tick(c);
	}
}

void guest_main(const struct km_boot_info *bi, unsigned int vcpu)
{
	static const char *const known[] = { "wss", "compute", WORKSET_ARGS, NULL };
	struct workset_conf conf;
	struct rt_cpu c;
	struct gmem m;
	struct pick p;
	struct pace pace;
	uint64_t avail, pages, lo, hi, gpa, ncompute;
	unsigned int word;

	rt_init(&c, bi, vcpu, "dirtier", known);
	gmem_init(&m, bi->free, bi->nr_ranges);
	if (m.total == 0)
		rt_panic(&c, "no free memory in the boot info");
	avail = m.total * KM_PAGE_SIZE;
	workset_args(&c, &conf);
	pages = rt_arg_size(&c, "wss", avail, KM_PAGE_SIZE, avail) / KM_PAGE_SIZE;
	gmem_share(pages, c.nr_vcpus, vcpu, &lo, &hi);
	ncompute = rt_arg_u64(&c, "compute", 0, 0, c.nr_vcpus);
	if (vcpu == 0)
		workset_print(&c, &conf, pages, "");
	if (vcpu < ncompute) {
		rt_printf(&c, "computing (compute=%llu), not writing\n",
			  (unsigned long long)ncompute);
		dirtier_compute(&c, vcpu);
	}
	if (lo == hi) {
		rt_printf(&c, "no pages in this vCPU's share, idling\n");
		rt_idle(&c);
	}
	workset_start(&c, &conf, hi - lo, &p, &pace);
	for (;;) {
		rt_pace(&c, &pace);
		gpa = gmem_gpa(&m, lo + pick_next(&p));
		/* Golden-ratio steps over the 512 words: consecutive writes spread out. */
		word = (unsigned int)((c.counter * PRNG_GOLDEN) >> 55);
		((volatile uint64_t *)gpa)[word] = c.counter + 1;
		c.counter++;
		rt_tick(&c);
	}
}
