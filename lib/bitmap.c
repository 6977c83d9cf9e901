/* Page bitmaps. See bitmap.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap.h"

int bitmap_init(struct bitmap *b, uint64_t nbits)
{
	b->nbits = nbits;
	b->words = calloc(BITMAP_WORDS(nbits) ? BITMAP_WORDS(nbits) : 1, sizeof(uint64_t));
	return b->words ? 0 : -ENOMEM;
}

void bitmap_free(struct bitmap *b)
{
	if (!b)
		return;
	free(b->words);
	b->words = NULL;
	b->nbits = 0;
}

void bitmap_clear_all(struct bitmap *b)
{
	memset(b->words, 0, BITMAP_WORDS(b->nbits) * sizeof(uint64_t));
}

void bitmap_fill(struct bitmap *b)
{
	bitmap_clear_all(b);
	bitmap_set_range(b, 0, b->nbits);
}

void bitmap_set_range(struct bitmap *b, uint64_t first, uint64_t n)
{
	uint64_t i = first, end = first + n;

	/* Bit by bit to the next word boundary, then whole words, then the tail. */
	while (i < end && i % 64)
		bitmap_set(b, i++);
	for (; i + 64 <= end; i += 64)
		b->words[i / 64] = ~0ULL;
	while (i < end)
		bitmap_set(b, i++);
}

void bitmap_or_at(struct bitmap *dst, uint64_t dst_first, const uint64_t *src, uint64_t nbits)
{
	uint64_t w, i, nwords = BITMAP_WORDS(nbits);

	if (dst_first % 64 == 0) {
		for (w = 0; w < nwords; w++) {
			uint64_t v = src[w];

			if (w == nwords - 1 && nbits % 64)
				v &= (1ULL << (nbits % 64)) - 1;
			dst->words[dst_first / 64 + w] |= v;
		}
		return;
	}
	for (i = 0; i < nbits; i++)
		if ((src[i / 64] >> (i % 64)) & 1)
			bitmap_set(dst, dst_first + i);
}

uint64_t bitmap_count(const struct bitmap *b)
{
	uint64_t w, n = 0, nwords = BITMAP_WORDS(b->nbits);

	for (w = 0; w < nwords; w++)
		n += (uint64_t)__builtin_popcountll(b->words[w]);
	return n;
}

uint64_t bitmap_count_andnot(const struct bitmap *a, const struct bitmap *b)
{
	uint64_t w, n = 0, nwords = BITMAP_WORDS(a->nbits);

	for (w = 0; w < nwords; w++)
		n += (uint64_t)__builtin_popcountll(a->words[w] & ~b->words[w]);
	return n;
}

uint64_t bitmap_next_set(const struct bitmap *b, uint64_t from)
{
	uint64_t w, v;

	if (from >= b->nbits)
		return b->nbits;
	w = from / 64;
	v = b->words[w] & (~0ULL << (from % 64));
	for (;;) {
		if (v) {
			uint64_t i = w * 64 + (uint64_t)__builtin_ctzll(v);

			return i < b->nbits ? i : b->nbits;
		}
		if (++w >= BITMAP_WORDS(b->nbits))
			return b->nbits;
		v = b->words[w];
	}
}
