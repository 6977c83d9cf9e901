/* The content of kmwork's pages and disk blocks (stamp.h). */
#include "kvm/guest/prng.h"
#include "guest-linux/stamp.h"

/* Position-dependent, so that swapped words show too. */
static uint64_t stamp_sum(const uint64_t *p)
{
	uint64_t h = 0;
	unsigned int i;

	for (i = 3; i < STAMP_WORDS; i++)
		h = prng_mix64(h ^ p[i]) + i;
	return h;
}

void stamp_fill(uint64_t *p, uint64_t index, uint64_t version)
{
	uint64_t x = prng_mix64(index ^ prng_mix64(version));
	unsigned int i;

	p[0] = index;
	p[1] = version;
	for (i = 3; i < STAMP_WORDS; i++, x += PRNG_GOLDEN)
		p[i] = x;
	p[2] = stamp_sum(p);
}

int stamp_bad(const uint64_t *p, uint64_t index, uint64_t version)
{
	return p[0] != index || p[1] != version || p[2] != stamp_sum(p);
}
