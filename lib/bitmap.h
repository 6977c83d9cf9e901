/* Bitmaps of guest pages: 64-bit words, bit i of word i/64 (KVM's layout on x86-64). */
#ifndef KM_BITMAP_H
#define KM_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bitmap {
	uint64_t *words;
	uint64_t nbits;
};

#define BITMAP_WORDS(n)	(((n) + 63) / 64)

/* Allocates a zeroed bitmap of nbits. 0 or -ENOMEM. */
int bitmap_init(struct bitmap *b, uint64_t nbits);
void bitmap_free(struct bitmap *b);	/* NULL-safe, leaves b empty */

static inline void bitmap_set(struct bitmap *b, uint64_t i)
{
	b->words[i / 64] |= 1ULL << (i % 64);
}

static inline bool bitmap_test(const struct bitmap *b, uint64_t i)
{
	return (b->words[i / 64] >> (i % 64)) & 1;
}

/* Sets bits [first, first + n); the range must lie inside the bitmap. */
void bitmap_set_range(struct bitmap *b, uint64_t first, uint64_t n);
void bitmap_clear_all(struct bitmap *b);
void bitmap_fill(struct bitmap *b);
/* dst |= src bits shifted to start at bit dst_first (words of src, nbits long). */
void bitmap_or_at(struct bitmap *dst, uint64_t dst_first, const uint64_t *src, uint64_t nbits);
uint64_t bitmap_count(const struct bitmap *b);
/* Bits set in a and clear in b (of the same size). */
uint64_t bitmap_count_andnot(const struct bitmap *a, const struct bitmap *b);
/* The first set bit at or after from, or b->nbits if none. */
uint64_t bitmap_next_set(const struct bitmap *b, uint64_t from);

#endif
