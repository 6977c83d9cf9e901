/* Page choice for dirtier and verify (pick.h). */
#include <stddef.h>

#include "pick.h"

const char *const pick_pattern_names[] = {
	[PICK_SEQUENTIAL] = "sequential",
	[PICK_UNIFORM] = "uniform",
	[PICK_HOTCOLD] = "hotcold",
	[PICK_ZIPF] = "zipf",
	NULL,
};

int pick_init(struct pick *p, enum pick_pattern pattern, uint64_t n, uint64_t hot_pct,
	      uint64_t seed, uint64_t stream, uint32_t *zipf_q,
	      void (*tick)(void *), void *arg)
{
	if (n == 0 || pattern > PICK_ZIPF)
		return -1;
	p->pattern = pattern;
	p->n = n;
	p->next = 0;
	if (hot_pct > 100)
		hot_pct = 100;
	/* n * hot_pct cannot overflow: n counts pages of at most 2^52. */
	p->hot = n * hot_pct / 100;
	if (p->hot == 0)
		p->hot = 1;
	prng_seed(&p->rng, seed, stream);
	if (pattern == PICK_ZIPF)
		return zipf_init(&p->zipf, zipf_q, n, tick, arg);
	return 0;
}
