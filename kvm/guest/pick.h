/*
 * Which page to write next: the access patterns of dirtier and verify over
 * one vCPU's share of n pages, as offsets in [0, n). Pure code.
 *
 *   sequential  0, 1, ..., n-1, 0, 1, ...
 *   uniform     every page equally likely
 *   hotcold     the first hot% of the pages (at least one) get
 *               PICK_HOT_WRITES% of the writes, uniformly; the rest the others
 *   zipf        offset k with probability proportional to 1/(k+1) (zipf.h):
 *               the hottest pages are at the start of the share
 */
#ifndef KM_GUEST_PICK_H
#define KM_GUEST_PICK_H

#include <stdint.h>

#include "prng.h"
#include "zipf.h"

enum pick_pattern {
	PICK_SEQUENTIAL,
	PICK_UNIFORM,
	PICK_HOTCOLD,
	PICK_ZIPF,
};

#define PICK_HOT_WRITES	90	/* percent of hotcold writes that hit the hot set */

/* Names as the guest arguments spell them, indexed by enum pick_pattern. */
extern const char *const pick_pattern_names[];

struct pick {
	enum pick_pattern pattern;
	uint64_t n;		/* pages to choose from, > 0 */
	uint64_t next;		/* sequential: the next offset */
	uint64_t hot;		/* hotcold: offsets [0, hot) are hot */
	struct zipf zipf;
	struct prng rng;
};

/*
 * Prepares a picker over n > 0 pages. hot_pct (1..100) matters for
 * hotcold only. For zipf, zipf_q must have ZIPF_BUCKETS + 1 entries that
 * stay alive with p, and tick(arg) is called during the table build (see
 * zipf_init). Returns 0, or -1 on an invalid n or pattern.
 */
int pick_init(struct pick *p, enum pick_pattern pattern, uint64_t n, uint64_t hot_pct,
	      uint64_t seed, uint64_t stream, uint32_t *zipf_q,
	      void (*tick)(void *), void *arg);

/* The next offset, in [0, n). */
static inline uint64_t pick_next(struct pick *p)
{
	uint64_t v;

	switch (p->pattern) {
	case PICK_SEQUENTIAL:
		v = p->next;
		p->next = v + 1 == p->n ? 0 : v + 1;
		return v;
	case PICK_HOTCOLD:
		if (p->hot == p->n || prng_below(&p->rng, 100) < PICK_HOT_WRITES)
			return prng_below(&p->rng, p->hot);
		return p->hot + prng_below(&p->rng, p->n - p->hot);
	case PICK_ZIPF:
		return zipf_sample(&p->zipf, &p->rng);
	case PICK_UNIFORM:
	default:
		return prng_below(&p->rng, p->n);
	}
}

#endif
