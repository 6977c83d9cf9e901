/*
 * fill: writes memory once, then idles. The pages (the first size bytes of
 * free memory) are split among the vCPUs in contiguous shares. Counter:
 * pages written by this vCPU.
 *
 * Arguments:
 *   size=BYTES      how much to write (K/M/G suffixes; default: all free
 *                   memory), rounded down to whole pages
 *   pattern=zero    zeros: the pages are touched (allocated, dirtied) but
 *                   stay zero pages for a zero-page detector
 *          =random  xorshift64* output: incompressible (default)
 *          =text    lines of words with a per-page header: compressible,
 *                   but no two pages alike
 *   seed=N          for random and text (default 1)
 */
#include "fmt.h"
#include "gmem.h"
#include "prng.h"
#include "runtime.h"

enum fill_pattern { FILL_ZERO, FILL_RANDOM, FILL_TEXT };

static const char *const fill_patterns[] = { "zero", "random", "text", NULL };

static const char *const fill_words[32] = {
	"page", "dirty", "bitmap", "round", "copy", "guest", "memory", "vcpu",
	"migrate", "snapshot", "the", "a", "of", "and", "to", "in",
	"downtime", "bandwidth", "converge", "write", "protect", "fault", "ring", "slot",
	"kvm", "host", "tlb", "shadow", "paging", "log", "clear", "harvest",
};

/* 4 KiB of word salad in lines of about 72 characters. */
static void fill_text_template(char *t, struct prng *r)
{
	unsigned int pos = 0, col = 0, i;
	const char *w;

	while (pos < KM_PAGE_SIZE) {
		w = fill_words[prng_next(r) >> 59];
		for (i = 0; w[i] && pos < KM_PAGE_SIZE; i++, col++)
			t[pos++] = w[i];
		if (pos < KM_PAGE_SIZE)
			t[pos++] = col >= 72 ? '\n' : ' ';
		col = col >= 72 ? 0 : col + 1;
	}
}

static void fill_page(uint64_t *p, enum fill_pattern pattern, uint64_t gpa,
		      struct prng *r, const char *tmpl)
{
	char *t = (char *)p;
	unsigned int i, off;

	switch (pattern) {
	case FILL_ZERO:
		memset(p, 0, KM_PAGE_SIZE);
		break;
	case FILL_RANDOM:
		for (i = 0; i < KM_PAGE_SIZE / 8; i++)
			p[i] = prng_next(r);
		break;
	case FILL_TEXT:
		/* The template rotated by a per-page amount, under a header line. */
		off = (unsigned int)((gpa >> 12) * 61 % KM_PAGE_SIZE);
		memcpy(t, tmpl + off, KM_PAGE_SIZE - off);
		memcpy(t + KM_PAGE_SIZE - off, tmpl, off);
		i = (unsigned int)fmt_snprintf(t, 32, "page 0x%012llx\n", (unsigned long long)gpa);
		t[i] = ' ';	/* overwrite the NUL */
		break;
	}
}

void guest_main(const struct km_boot_info *bi, unsigned int vcpu)
{
	static const char *const known[] = { "size", "pattern", "seed", NULL };
	struct rt_cpu c;
	struct gmem m;
	struct prng r;
	char tmpl[KM_PAGE_SIZE];
	uint64_t size, pages, lo, hi, i, gpa, seed;
	enum fill_pattern pattern;

	rt_init(&c, bi, vcpu, "fill", known);
	gmem_init(&m, bi->free, bi->nr_ranges);
	size = rt_arg_size(&c, "size", m.total * KM_PAGE_SIZE, 0, m.total * KM_PAGE_SIZE);
	pattern = rt_arg_choice(&c, "pattern", fill_patterns, FILL_RANDOM);
	seed = rt_arg_u64(&c, "seed", 1, 0, UINT64_MAX);
	pages = size / KM_PAGE_SIZE;
	gmem_share(pages, c.nr_vcpus, vcpu, &lo, &hi);
	if (vcpu == 0)
		rt_printf(&c, "%llu pages (%llu MiB) of %llu free, pattern %s, %u vCPUs\n",
			  (unsigned long long)pages, (unsigned long long)(pages >> 8),
			  (unsigned long long)m.total, fill_patterns[pattern], c.nr_vcpus);
	prng_seed(&r, seed, vcpu);
	if (pattern == FILL_TEXT)
		fill_text_template(tmpl, &r);
	for (i = lo; i < hi; i++) {
		gpa = gmem_gpa(&m, i);
		fill_page((uint64_t *)gpa, pattern, gpa, &r, tmpl);
		c.counter++;
		rt_tick(&c);
	}
	rt_printf(&c, "wrote %llu pages, idling\n", (unsigned long long)c.counter);
	rt_report(&c, km_rdtsc());
	rt_idle(&c);
}
