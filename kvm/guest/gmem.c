/* Free memory as an array of pages (gmem.h). */
#include "gmem.h"

void gmem_init(struct gmem *m, const struct km_mem_range *r, unsigned int nr)
{
	uint64_t start, end;
	unsigned int i;

	m->nr = 0;
	m->total = 0;
	if (nr > KM_BOOT_MAX_RANGES)
		nr = KM_BOOT_MAX_RANGES;
	for (i = 0; i < nr; i++) {
		start = r[i].start;
		end = r[i].start + r[i].len;
		if (end < start)	/* wraps: take nothing rather than guess */
			continue;
		if (start < KM_FREE_GPA)
			start = KM_FREE_GPA;
		start = (start + KM_PAGE_SIZE - 1) & ~(KM_PAGE_SIZE - 1);
		end &= ~(KM_PAGE_SIZE - 1);
		if (end <= start)
			continue;
		m->start[m->nr] = start;
		m->pages[m->nr] = (end - start) / KM_PAGE_SIZE;
		m->total += m->pages[m->nr];
		m->nr++;
	}
}

void gmem_share(uint64_t n, unsigned int nr, unsigned int idx, uint64_t *lo, uint64_t *hi)
{
	uint64_t base = n / nr, extra = n % nr;

	*lo = base * idx + (idx < extra ? idx : extra);
	*hi = *lo + base + (idx < extra ? 1 : 0);
}

static uint64_t table_pages(uint64_t ws)
{
	return (ws + GMEM_VERSIONS_PER_PAGE - 1) / GMEM_VERSIONS_PER_PAGE;
}

int gmem_verify_layout(const struct gmem *m, uint64_t want, uint64_t *table, uint64_t *ws)
{
	uint64_t n = want;

	if (m->nr == 0)
		return -1;
	if (n == 0) {
		/* The largest n with n + table_pages(n) <= total. */
		n = m->total / (GMEM_VERSIONS_PER_PAGE + 1) * GMEM_VERSIONS_PER_PAGE;
		while (n + 1 + table_pages(n + 1) <= m->total)
			n++;
		/* No more than one table in the first range can describe. */
		if (table_pages(n) > m->pages[0])
			n = m->pages[0] * GMEM_VERSIONS_PER_PAGE;
		if (n == 0)
			return -1;
	}
	if (n > m->total || table_pages(n) > m->total - n || table_pages(n) > m->pages[0])
		return -1;
	*table = table_pages(n);
	*ws = n;
	return 0;
}
