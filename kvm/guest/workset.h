/*
 * What dirtier and verify share: the arguments that shape their writes
 * (rate, pattern, hot, seed) and the per-vCPU picker and pacer set up from
 * them. Guest-only.
 */
#ifndef KM_GUEST_WORKSET_H
#define KM_GUEST_WORKSET_H

#include <stdint.h>

#include "pace.h"
#include "pick.h"
#include "runtime.h"

struct workset_conf {
	uint64_t rate;		/* pages/s over all vCPUs, 0: as fast as possible */
	enum pick_pattern pattern;
	uint64_t hot;		/* hotcold: percent of the pages that are hot */
	uint64_t seed;
};

/* Argument keys workset_args reads, for rt_init's list. */
#define WORKSET_ARGS	"rate", "pattern", "hot", "seed"

/* Reads rate= (default 0), pattern= (uniform), hot= (10), seed= (1). */
void workset_args(const struct rt_cpu *c, struct workset_conf *conf);

/* One console line: "wss N pages (M MiB)<extra>, rate ..., pattern ...". */
void workset_print(struct rt_cpu *c, const struct workset_conf *conf, uint64_t pages,
		   const char *extra);

/*
 * Prepares this vCPU's picker over its n > 0 pages (seeded by seed and the
 * vCPU index; zipf builds its table here, ticking) and its share of the
 * rate.
 */
void workset_start(struct rt_cpu *c, const struct workset_conf *conf, uint64_t n,
		   struct pick *p, struct pace *pace);

#endif
