/*
 * Zipf-distributed ranks (exponent 1: rank k, counted from 0, is chosen with
 * probability proportional to 1/(k+1)) by inverse CDF over a quantile table.
 * Integer-only: the guests are built with -mgeneral-regs-only, so no
 * floating point anywhere. Pure code, tested on the host.
 *
 * The CDF is cut into ZIPF_BUCKETS equal slices of probability; q[j] is the
 * rank that covers the start of slice j. A sample picks a slice uniformly,
 * then a rank uniformly in [q[j], q[j+1]]. Head ranks own whole slices and
 * come out with their exact weight (to 1/ZIPF_BUCKETS); in the tail the
 * density varies by a factor n^(1/ZIPF_BUCKETS) inside one slice (about 1%
 * for a million ranks), which is the approximation.
 */
#ifndef KM_GUEST_ZIPF_H
#define KM_GUEST_ZIPF_H

#include <stdint.h>

#include "prng.h"

#define ZIPF_BUCKETS_SHIFT	10
#define ZIPF_BUCKETS		(1U << ZIPF_BUCKETS_SHIFT)
#define ZIPF_MAX_RANKS		(1ULL << 32)	/* q[] holds ranks as uint32_t */

struct zipf {
	uint64_t n;		/* ranks 0 .. n-1 */
	const uint32_t *q;	/* ZIPF_BUCKETS + 1 entries */
};

/*
 * Builds the table for n ranks into q (ZIPF_BUCKETS + 1 entries, owned by
 * the caller and kept alive while z is used). Costs two passes of n integer
 * divisions; tick(arg), if not NULL, is called every 65536 ranks so that a
 * guest keeps reporting progress. Returns 0, or -1 if n is 0 or above
 * ZIPF_MAX_RANKS.
 */
int zipf_init(struct zipf *z, uint32_t *q, uint64_t n, void (*tick)(void *), void *arg);

/* A rank in [0, n). */
static inline uint64_t zipf_sample(const struct zipf *z, struct prng *r)
{
	uint64_t j = prng_next(r) >> (64 - ZIPF_BUCKETS_SHIFT);
	uint64_t lo = z->q[j], hi = z->q[j + 1];

	return lo == hi ? lo : lo + prng_below(r, hi - lo + 1);
}

#endif
