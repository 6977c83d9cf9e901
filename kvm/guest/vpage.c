/* verify's page content (vpage.h). */
#include "prng.h"
#include "vpage.h"

static uint64_t vpage_seed(uint64_t gfn, uint64_t version)
{
	return prng_mix64(gfn ^ prng_mix64(version));
}

void vpage_fill(uint64_t *page, uint64_t gfn, uint64_t version)
{
	uint64_t x = vpage_seed(gfn, version) + 2 * PRNG_GOLDEN;
	unsigned int i;

	page[0] = gfn;
	page[1] = version;
	for (i = 2; i < VPAGE_WORDS; i++, x += PRNG_GOLDEN)
		page[i] = x;
}

unsigned int vpage_check(const uint64_t *page, uint64_t gfn, uint64_t version)
{
	uint64_t x;
	unsigned int i;

	if (version == 0) {
		for (i = 0; i < VPAGE_WORDS; i++)
			if (page[i] != 0)
				return i + 1;
		return 0;
	}
	if (page[0] != gfn)
		return 1;
	if (page[1] != version)
		return 2;
	x = vpage_seed(gfn, version) + 2 * PRNG_GOLDEN;
	for (i = 2; i < VPAGE_WORDS; i++, x += PRNG_GOLDEN)
		if (page[i] != x)
			return i + 1;
	return 0;
}
