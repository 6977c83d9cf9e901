/* Quantile table for Zipf sampling (zipf.h). */
#include "zipf.h"

/* Weights 1/k in fixed point: sums stay below 2^45 for 2^32 ranks. */
#define ZIPF_ONE	(1ULL << 40)
#define ZIPF_TICK_MASK	0xffffULL

int zipf_init(struct zipf *z, uint32_t *q, uint64_t n, void (*tick)(void *), void *arg)
{
	uint64_t total = 0, sum = 0, k, j;

	if (n == 0 || n > ZIPF_MAX_RANKS)
		return -1;
	for (k = 1; k <= n; k++) {
		total += ZIPF_ONE / k;
		if (tick && (k & ZIPF_TICK_MASK) == 0)
			tick(arg);
	}
	/*
	 * Rank k-1 covers [sum before it, sum after it) of [0, total); slice j
	 * starts at j * total / ZIPF_BUCKETS (below 2^55: no overflow).
	 */
	j = 0;
	for (k = 1; k <= n && j < ZIPF_BUCKETS; k++) {
		sum += ZIPF_ONE / k;
		while (j < ZIPF_BUCKETS && j * total / ZIPF_BUCKETS < sum)
			q[j++] = (uint32_t)(k - 1);
		if (tick && (k & ZIPF_TICK_MASK) == 0)
			tick(arg);
	}
	while (j < ZIPF_BUCKETS)	/* only rounding can leave slices unassigned */
		q[j++] = (uint32_t)(n - 1);
	q[ZIPF_BUCKETS] = (uint32_t)(n - 1);
	z->n = n;
	z->q = q;
	return 0;
}
