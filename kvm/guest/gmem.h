/*
 * The workload's memory: the free ranges of the boot info seen as one array
 * of pages (range 0 first), how it is shared among vCPUs, and verify's
 * layout. Pure arithmetic on guest physical addresses (identity-mapped in
 * the guest), so it is tested on the host.
 */
#ifndef KM_GUEST_GMEM_H
#define KM_GUEST_GMEM_H

#include <stdint.h>

#include "abi.h"

struct gmem {
	unsigned int nr;
	uint64_t start[KM_BOOT_MAX_RANGES];	/* page-aligned GPA */
	uint64_t pages[KM_BOOT_MAX_RANGES];
	uint64_t total;				/* pages in all ranges */
};

/*
 * Takes up to KM_BOOT_MAX_RANGES ranges, shrunk to whole pages and clipped
 * to start at KM_FREE_GPA or above (the image, stacks and system pages are
 * never workload memory, whatever the boot info says). Empty ranges are
 * dropped.
 */
void gmem_init(struct gmem *m, const struct km_mem_range *r, unsigned int nr);

/* The GPA of page index idx < m->total. */
static inline uint64_t gmem_gpa(const struct gmem *m, uint64_t idx)
{
	unsigned int i;

	for (i = 0; i + 1 < m->nr && idx >= m->pages[i]; i++)
		idx -= m->pages[i];
	return m->start[i] + idx * KM_PAGE_SIZE;
}

/*
 * vCPU idx's share [*lo, *hi) of n items among nr vCPUs: contiguous, in
 * vCPU order, sizes differing by at most one.
 */
void gmem_share(uint64_t n, unsigned int nr, unsigned int idx, uint64_t *lo, uint64_t *hi);

/* Table entries per page: verify keeps one uint64_t version per page. */
#define GMEM_VERSIONS_PER_PAGE	(KM_PAGE_SIZE / 8)

/*
 * verify's layout: the version table takes pages [0, *table) of m, the
 * working set pages [*table, *table + *ws). want is the working set in
 * pages, 0 for as many as fit. The table must lie in range 0 so that it is
 * one contiguous array. Returns 0, or -1 if it does not fit.
 */
int gmem_verify_layout(const struct gmem *m, uint64_t want, uint64_t *table, uint64_t *ws);

#endif
