/*
 * compute: a CPU-bound integer hash chain, to see how much a migration or a
 * checkpoint slows a vCPU down. Counter: hash steps done by this vCPU
 * (RT_COMPUTE_BATCH steps per loop iteration).
 *
 * Arguments: iters=N  stop with km_done(0) once this vCPU has done N steps
 *                     (default: run forever).
 */
#include "prng.h"
#include "runtime.h"

#define COMPUTE_BATCH	4096	/* steps between ticks: a few microseconds */

void guest_main(const struct km_boot_info *bi, unsigned int vcpu)
{
	static const char *const known[] = { "iters", NULL };
	struct rt_cpu c;
	uint64_t iters, x, n, i;

	rt_init(&c, bi, vcpu, "compute", known);
	iters = rt_arg_u64(&c, "iters", 0, 1, UINT64_MAX);
	if (vcpu == 0)
		rt_printf(&c, "%u vCPUs, iters %llu%s\n", c.nr_vcpus,
			  (unsigned long long)iters, iters ? "" : " (forever)");
	x = vcpu + 1;
	for (;;) {
		n = COMPUTE_BATCH;
		if (iters && iters - c.counter < n)
			n = iters - c.counter;
		for (i = 0; i < n; i++)
			x = prng_mix64(x);	/* each step depends on the last */
		/* The chain must really run even though x is only printed at the end. */
		asm volatile("" : "+r"(x));
		c.counter += n;
		rt_tick(&c);
		if (iters && c.counter >= iters) {
			rt_printf(&c, "done: %llu steps, hash 0x%016llx\n",
				  (unsigned long long)c.counter, (unsigned long long)x);
			rt_report(&c, km_rdtsc());	/* the final count */
			km_done(0);
		}
	}
}
