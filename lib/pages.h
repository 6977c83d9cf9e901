/*
 * The page codec: the payload of a REC_PAGES record (docs/format.md s.4.5).
 *
 * A payload is a sequence of entries, each one guest page:
 *   u64 gpa | kind     the page's guest physical address (4 KiB aligned)
 *                      with the kind in its low 12 bits
 *   kind ZERO:         nothing more: the page is all zero bytes
 *   kind RAW:          4096 bytes
 *   kind LZ4:          u32 clen (1 .. 4095), then clen bytes of an LZ4 block
 *                      that decompresses to exactly 4096 bytes
 * A page is LZ4 only when that is smaller than RAW; zero pages cost 8 bytes.
 * The reader bounds every length and checks every kind before use.
 */
#ifndef KM_PAGES_H
#define KM_PAGES_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

#define PAGE_SIZE_4K		4096U
#define PAGES_ENTRY_MAX		(8U + 4U + PAGE_SIZE_4K)	/* the largest entry */

enum page_kind {
	PAGE_ZERO = 0,
	PAGE_RAW = 1,
	PAGE_LZ4 = 2,
	PAGE_KIND_MAX
};

/* What an encoder produced, summed over calls (the caller zeroes it). */
struct pages_stats {
	uint64_t pages, zero, raw, lz4;
	uint64_t bytes_in;		/* 4096 per non-zero page */
	uint64_t bytes_out;		/* payload bytes written */
};

/* True if the page holds only zero bytes. */
bool pages_is_zero(const uint8_t *page);

/*
 * Appends one page's entry to payload: ZERO if it is all zero, LZ4 if
 * compress is true and that saves space, RAW otherwise. 0, or the buffer's
 * errors (KM_ERR_NO_SPACE: flush the batch and call again).
 */
int pages_put(struct buf *payload, uint64_t gpa, const uint8_t *page, bool compress,
	      struct pages_stats *st);

/*
 * Takes the next entry from a payload: its gpa, kind and encoded bytes
 * (data/len point into the payload; NULL/0 for ZERO). KM_ERR_END when the
 * payload is exhausted; KM_ERR_CORRUPT for an unknown kind or an LZ4
 * length out of 1..4095 (the address is aligned by construction: its low
 * bits are the kind); KM_ERR_TRUNCATED if an entry runs
 * past the end (nothing consumed).
 */
int pages_get(struct buf *payload, uint64_t *gpa, enum page_kind *kind,
	      const uint8_t **data, uint32_t *len);

/*
 * Writes the page an entry describes into dst (4096 bytes). LZ4 must
 * decompress to exactly 4096 bytes, else KM_ERR_CORRUPT.
 */
int pages_expand(enum page_kind kind, const uint8_t *data, uint32_t len, uint8_t *dst);

#endif
