/*
 * verify's page content: a pure function of the page's frame number and
 * its version, so a check needs nothing but the version table.
 *
 *   word 0      gfn (guest frame number, GPA >> 12)
 *   word 1      version (>= 1)
 *   word i >= 2 s + i * PRNG_GOLDEN, s = mix(gfn, version)
 *
 * Every word but the first differs between two versions of one page, the
 * header says what a wrong page holds, and a page copied to the wrong
 * frame fails on word 0. Version 0 means never written: the page must
 * still be all zeros. Pure code, tested on the host.
 */
#ifndef KM_GUEST_VPAGE_H
#define KM_GUEST_VPAGE_H

#include <stdint.h>

#define VPAGE_WORDS	512	/* 4 KiB of uint64_t */

/* Writes the content of (gfn, version >= 1) into page. */
void vpage_fill(uint64_t *page, uint64_t gfn, uint64_t version);

/*
 * 0 if page holds (gfn, version), or all zeros when version is 0;
 * otherwise 1 + the index of the first word that differs.
 */
unsigned int vpage_check(const uint64_t *page, uint64_t gfn, uint64_t version);

#endif
