/*
 * idle: sleeps in KM_HC_SLEEP, RT_IDLE_US at a time, and reports after
 * each sleep. Counter: completed sleeps. No arguments.
 */
#include "runtime.h"

void guest_main(const struct km_boot_info *bi, unsigned int vcpu)
{
	struct rt_cpu c;

	rt_init(&c, bi, vcpu, "idle", NULL);
	if (vcpu == 0)
		rt_printf(&c, "%u vCPUs, %llu MiB, TSC %llu kHz\n", c.nr_vcpus,
			  bi->mem_size >> 20, bi->tsc_khz);
	for (;;) {
		rt_sleep_us(&c, RT_IDLE_US);
		c.counter++;
		rt_tick(&c);
	}
}
