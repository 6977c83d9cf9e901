/*
 * Pseudo-random numbers for the workload guests: xorshift64* streams seeded
 * through splitmix64, so that every (seed, vCPU) pair gets its own
 * well-mixed stream. Pure code: compiles freestanding (guests) and hosted
 * (test-guest-logic). Not for anything secret.
 */
#ifndef KM_GUEST_PRNG_H
#define KM_GUEST_PRNG_H

#include <stdint.h>

#define PRNG_GOLDEN	0x9e3779b97f4a7c15ULL	/* 2^64 / golden ratio, odd */

struct prng {
	uint64_t s;	/* never 0 */
};

/* splitmix64's finalizer: a bijective 64-bit mix, also used for page content. */
static inline uint64_t prng_mix64(uint64_t x)
{
	x += PRNG_GOLDEN;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* A stream for (seed, stream); different streams are unrelated. */
void prng_seed(struct prng *r, uint64_t seed, uint64_t stream);

/* xorshift64*: the high bits are the good ones, so callers use those. */
static inline uint64_t prng_next(struct prng *r)
{
	uint64_t x = r->s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/*
 * Uniform in [0, n), n > 0, without bias (Lemire's multiply-shift with
 * rejection). The 128-bit product is one `mul`; no libgcc helper is needed.
 */
static inline uint64_t prng_below(struct prng *r, uint64_t n)
{
	unsigned __int128 m = (unsigned __int128)prng_next(r) * n;
	uint64_t lo = (uint64_t)m;

	if (lo < n) {
		uint64_t t = -n % n;	/* 2^64 mod n */

		while (lo < t) {
			m = (unsigned __int128)prng_next(r) * n;
			lo = (uint64_t)m;
		}
	}
	return (uint64_t)(m >> 64);
}

#endif
