/*
 * The content of kmwork's pages and disk blocks, 4 KiB each:
 *
 *   word 0      index (page or block number)
 *   word 1      version (>= 1)
 *   word 2      checksum of words 3.., position-dependent
 *   word i >= 3 mix(index, version) + i * PRNG_GOLDEN
 *
 * A block read back alone (disk-verify on the host) checks itself by its
 * checksum; a page checked against a versions array also must carry the
 * version the array says. Pure code.
 */
#ifndef KM_GUEST_LINUX_STAMP_H
#define KM_GUEST_LINUX_STAMP_H

#include <stdint.h>

#define STAMP_SIZE	4096
#define STAMP_WORDS	(STAMP_SIZE / 8)

/* Writes the content of (index, version) into the 4 KiB at p. */
void stamp_fill(uint64_t *p, uint64_t index, uint64_t version);

/* 0 if p holds index, version and a checksum that matches the rest; else 1. */
int stamp_bad(const uint64_t *p, uint64_t index, uint64_t version);

#endif
