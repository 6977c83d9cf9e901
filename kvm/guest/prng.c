/* Seeding of the guests' xorshift64* streams (prng.h). */
#include "prng.h"

void prng_seed(struct prng *r, uint64_t seed, uint64_t stream)
{
	r->s = prng_mix64(seed ^ prng_mix64(stream));
	if (r->s == 0)	/* xorshift's one fixed point */
		r->s = PRNG_GOLDEN;
}
