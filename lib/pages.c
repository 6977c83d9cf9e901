/* The page codec: see pages.h and docs/format.md s.4.5. */
#include "config.h"

#include <string.h>

#include <lz4.h>

#include "err.h"
#include "pages.h"

#define KIND_MASK	0xfffULL

bool pages_is_zero(const uint8_t *page)
{
	uint64_t w[8], acc = 0;
	unsigned int i, j;

	/*
	 * OR whole cache lines before branching: most pages fail early
	 * anyway. memcpy keeps unaligned pages defined; it compiles to loads.
	 */
	for (i = 0; i < PAGE_SIZE_4K; i += sizeof(w)) {
		memcpy(w, page + i, sizeof(w));
		for (j = 0; j < 8; j++)
			acc |= w[j];
		if (acc)
			return false;
	}
	return true;
}

int pages_put(struct buf *payload, uint64_t gpa, const uint8_t *page, bool compress,
	      struct pages_stats *st)
{
	uint8_t *dst;
	int clen, r;

	if (gpa & KIND_MASK)
		return KM_ERR_INVALID;
	if (buf_room(payload) < PAGES_ENTRY_MAX)
		return KM_ERR_NO_SPACE;
	if (pages_is_zero(page)) {
		if ((r = buf_put_u64(payload, gpa | PAGE_ZERO)) != 0)
			return r;
		st->pages++;
		st->zero++;
		st->bytes_out += 8;
		return 0;
	}
	st->pages++;
	st->bytes_in += PAGE_SIZE_4K;
	if (compress) {
		if ((r = buf_reserve(payload, PAGES_ENTRY_MAX, &dst)) != 0)
			return r;
		/*
		 * Into at most 4095 bytes: if LZ4 cannot beat raw it gives up
		 * (returns 0) instead of expanding, and the page goes raw.
		 */
		clen = LZ4_compress_default((const char *)page, (char *)dst + 12,
					    (int)PAGE_SIZE_4K, (int)PAGE_SIZE_4K - 1);
		if (clen > 0) {
			uint64_t head = gpa | PAGE_LZ4;
			uint32_t l = (uint32_t)clen;

			/* Little-endian on the wire; x86-64 only (configure checks). */
			memcpy(dst, &head, 8);
			memcpy(dst + 8, &l, 4);
			/* Give back what the reservation did not use. */
			buf_unreserve(payload, PAGES_ENTRY_MAX - 12 - l);
			st->lz4++;
			st->bytes_out += 12 + l;
			return 0;
		}
		buf_unreserve(payload, PAGES_ENTRY_MAX);
	}
	if ((r = buf_put_u64(payload, gpa | PAGE_RAW)) != 0 ||
	    (r = buf_put(payload, page, PAGE_SIZE_4K)) != 0)
		return r;
	st->raw++;
	st->bytes_out += 8 + PAGE_SIZE_4K;
	return 0;
}

int pages_get(struct buf *payload, uint64_t *gpa, enum page_kind *kind,
	      const uint8_t **data, uint32_t *len)
{
	const uint8_t *p;
	uint64_t head;
	uint32_t l;
	size_t avail = buf_len(payload);

	if (avail == 0)
		return KM_ERR_END;
	if (avail < 8)
		return KM_ERR_TRUNCATED;
	memcpy(&head, buf_ptr(payload), 8);
	switch (head & KIND_MASK) {
	case PAGE_ZERO:
		l = 0;
		break;
	case PAGE_RAW:
		l = PAGE_SIZE_4K;
		break;
	case PAGE_LZ4:
		if (avail < 12)
			return KM_ERR_TRUNCATED;
		memcpy(&l, buf_ptr(payload) + 8, 4);
		if (l == 0 || l >= PAGE_SIZE_4K)
			return KM_ERR_CORRUPT;
		break;
	default:
		return KM_ERR_CORRUPT;
	}
	if ((head & KIND_MASK) == PAGE_LZ4) {
		if (avail - 12 < l)
			return KM_ERR_TRUNCATED;
		buf_consume(payload, 12);
	} else {
		if (avail - 8 < l)
			return KM_ERR_TRUNCATED;
		buf_consume(payload, 8);
	}
	p = NULL;
	if (l && buf_get_ptr(payload, l, &p) != 0)
		return KM_ERR_TRUNCATED;
	*gpa = head & ~KIND_MASK;
	*kind = (enum page_kind)(head & KIND_MASK);
	*data = p;
	*len = l;
	return 0;
}

int pages_expand(enum page_kind kind, const uint8_t *data, uint32_t len, uint8_t *dst)
{
	switch (kind) {
	case PAGE_ZERO:
		memset(dst, 0, PAGE_SIZE_4K);
		return 0;
	case PAGE_RAW:
		if (len != PAGE_SIZE_4K)
			return KM_ERR_CORRUPT;
		memcpy(dst, data, PAGE_SIZE_4K);
		return 0;
	case PAGE_LZ4:
		if (len == 0 || len >= PAGE_SIZE_4K)
			return KM_ERR_CORRUPT;
		/* Exactly a page, or the entry is corrupt (STYLE.md, lz4). */
		if (LZ4_decompress_safe((const char *)data, (char *)dst, (int)len,
					(int)PAGE_SIZE_4K) != (int)PAGE_SIZE_4K)
			return KM_ERR_CORRUPT;
		return 0;
	default:
		return KM_ERR_CORRUPT;
	}
}
