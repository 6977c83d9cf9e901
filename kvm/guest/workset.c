/* Setup shared by dirtier and verify (workset.h). */
#include "fmt.h"
#include "workset.h"

/* Zipf quantile tables, one per vCPU: .data and .bss are shared by all vCPUs. */
static uint32_t workset_zipf_q[KM_MAX_VCPUS][ZIPF_BUCKETS + 1];

void workset_args(const struct rt_cpu *c, struct workset_conf *conf)
{
	conf->rate = rt_arg_u64(c, "rate", 0, 0, 1000000000000ULL);
	conf->pattern = rt_arg_choice(c, "pattern", pick_pattern_names, PICK_UNIFORM);
	conf->hot = rt_arg_u64(c, "hot", 10, 1, 100);
	conf->seed = rt_arg_u64(c, "seed", 1, 0, UINT64_MAX);
}

void workset_start(struct rt_cpu *c, const struct workset_conf *conf, uint64_t n,
		   struct pick *p, struct pace *pace)
{
	if (pick_init(p, conf->pattern, n, conf->hot, conf->seed, c->vcpu,
		      workset_zipf_q[c->vcpu], rt_tick_cb, c) != 0)
		rt_panic(c, "cannot pick among %llu pages with pattern %s",
			 (unsigned long long)n, pick_pattern_names[conf->pattern]);
	pace_init(pace, c->tsc_khz * 1000, conf->rate, c->nr_vcpus, c->vcpu, km_rdtsc());
}

void workset_print(struct rt_cpu *c, const struct workset_conf *conf, uint64_t pages,
		   const char *extra)
{
	char rate[32], hot[16] = "";

	if (conf->rate)
		fmt_snprintf(rate, sizeof(rate), "%llu pages/s", (unsigned long long)conf->rate);
	else
		fmt_snprintf(rate, sizeof(rate), "unlimited");
	if (conf->pattern == PICK_HOTCOLD)
		fmt_snprintf(hot, sizeof(hot), " hot=%llu%%", (unsigned long long)conf->hot);
	rt_printf(c, "wss %llu pages (%llu MiB)%s, rate %s, pattern %s%s, seed %llu, "
		  "%u vCPUs\n", (unsigned long long)pages,
		  (unsigned long long)(pages * KM_PAGE_SIZE >> 20), extra, rate,
		  pick_pattern_names[conf->pattern], hot, (unsigned long long)conf->seed,
		  c->nr_vcpus);
}
