/*
 * verify: a dirtier that can prove no write was lost. Every write rewrites
 * a whole page with content derived from (gfn, version) (vpage.h) and then
 * bumps that page's entry in a version table kept in guest memory, right
 * before the working set:
 *
 *   free page 0 ..        version table: one uint64_t per working-set page
 *   free page T ..        working set: N pages (T = ceil(N / 512))
 *
 * ("free page" counts through the boot info's free ranges in order; the
 * table must fit in the first range.) Each vCPU owns a contiguous share of
 * the working set and of the table. On KM_REQ_CHECK each vCPU compares
 * every page it owns with its table entry (version 0: the page must still
 * be all zeros) and answers km_check_result(pages owned, bad pages).
 *
 * A check runs only between two writes (requests arrive with hypercalls,
 * and the loop makes none inside a write), so a page and its entry always
 * agree unless memory was lost or corrupted, e.g. a dirty page a migration
 * did not copy again, or a stale page a restore brought back. Counter:
 * pages written by this vCPU.
 *
 * Arguments: those of dirtier (rate, wss, pattern, hot, seed), where wss
 * is the working set without the table (default: as much as fits), and
 *   count=N   total pages to write over all vCPUs, then stop writing and
 *             idle, answering checks (default: write forever), so that a
 *             test can corrupt a page knowing the guest will not rewrite it
 */
#include "fmt.h"
#include "gmem.h"
#include "vpage.h"
#include "workset.h"

#define VERIFY_REPORT_BAD	4	/* bad pages described per check and vCPU */

struct verify {
	struct gmem m;
	volatile uint64_t *table;	/* one entry per working-set page */
	uint64_t table_pages;		/* the working set starts after them */
	uint64_t lo, hi;		/* this vCPU's working-set pages */
};

static uint64_t *verify_page(const struct verify *v, uint64_t w)
{
	return (uint64_t *)gmem_gpa(&v->m, v->table_pages + w);
}

static void verify_check(struct rt_cpu *c, uint64_t *pages, uint64_t *bad)
{
	const struct verify *v = c->priv;
	const uint64_t *page;
	uint64_t w, version, gpa;
	unsigned int r;

	*bad = 0;
	for (w = v->lo; w < v->hi; w++) {
		page = verify_page(v, w);
		version = v->table[w];
		r = vpage_check(page, (uint64_t)page >> 12, version);
		if (r) {
			gpa = (uint64_t)page;
			if (++*bad <= VERIFY_REPORT_BAD)
				rt_printf(c, "bad page 0x%llx: table says version %llu, page "
					  "holds gfn 0x%llx version %llu, word %u differs\n",
					  (unsigned long long)gpa, (unsigned long long)version,
					  (unsigned long long)page[0], (unsigned long long)page[1],
					  r - 1);
		}
		rt_tick(c);
	}
	*pages = v->hi - v->lo;
	rt_printf(c, "check: %llu pages, %llu bad\n", (unsigned long long)*pages,
		  (unsigned long long)*bad);
}

void guest_main(const struct km_boot_info *bi, unsigned int vcpu)
{
	static const char *const known[] = { "wss", "count", WORKSET_ARGS, NULL };
	struct workset_conf conf;
	struct verify v;
	struct rt_cpu c;
	struct pick p;
	struct pace pace;
	uint64_t want, ws, lo, hi, quota, w, version;
	uint64_t *page;
	char where[64];

	rt_init(&c, bi, vcpu, "verify", known);
	gmem_init(&v.m, bi->free, bi->nr_ranges);
	workset_args(&c, &conf);
	want = rt_arg_size(&c, "wss", 0, KM_PAGE_SIZE, UINT64_MAX) / KM_PAGE_SIZE;
	if (gmem_verify_layout(&v.m, want, &v.table_pages, &ws) != 0)
		rt_panic(&c, "a working set of %llu pages and its version table do not fit "
			 "in %llu free pages (first range: %llu)", (unsigned long long)want,
			 (unsigned long long)v.m.total,
			 (unsigned long long)(v.m.nr ? v.m.pages[0] : 0));
	v.table = (volatile uint64_t *)v.m.start[0];
	gmem_share(ws, c.nr_vcpus, vcpu, &v.lo, &v.hi);
	/* count= is split like the pages; absent: no limit. */
	quota = UINT64_MAX;
	if (rt_arg_has(&c, "count")) {
		gmem_share(rt_arg_u64(&c, "count", 0, 0, UINT64_MAX), c.nr_vcpus, vcpu, &lo, &hi);
		quota = hi - lo;
	}
	c.check = verify_check;
	c.priv = &v;
	if (vcpu == 0) {
		fmt_snprintf(where, sizeof(where), " after a %llu-page table at 0x%llx",
			     (unsigned long long)v.table_pages, (unsigned long long)v.m.start[0]);
		workset_print(&c, &conf, ws, where);
	}
	if (v.lo == v.hi || quota == 0) {
		rt_printf(&c, "nothing to write, idling\n");
		rt_idle(&c);
	}
	workset_start(&c, &conf, v.hi - v.lo, &p, &pace);
	for (; quota > 0; quota--) {
		rt_pace(&c, &pace);
		w = v.lo + pick_next(&p);
		page = verify_page(&v, w);
		version = v.table[w] + 1;
		vpage_fill(page, (uint64_t)page >> 12, version);
		/* Page first, then its entry; a check never sees the middle (above). */
		asm volatile("" : : : "memory");
		v.table[w] = version;
		c.counter++;
		rt_tick(&c);
	}
	rt_printf(&c, "wrote %llu pages, idling\n", (unsigned long long)c.counter);
	rt_report(&c, km_rdtsc());
	rt_idle(&c);
}
