/*
 * Bounded byte buffers (see buf.h), after OpenSSH's sshbuf.
 *
 * Storage holds [0, alloc) bytes; the unread contents are [off, len).
 * Invariants, checked on entry to every call:
 *	off <= len <= alloc, and alloc <= max for an owned buffer;
 *	d != NULL whenever alloc > 0;
 *	a view never owns its storage and has alloc == max == its length.
 * The cap counts unread bytes only: consumed bytes at the front are
 * reclaimed (moved out) before the storage grows.
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "log.h"

#define BUF_MIN_ALLOC	256

struct buf {
	uint8_t *d;		/* storage; const data for a view */
	size_t off;		/* first unread byte */
	size_t len;		/* end of the contents */
	size_t alloc;		/* bytes of storage */
	size_t max;		/* cap on unread bytes */
	int readonly;		/* a view of the caller's memory */
	int bulk;		/* buf_set_bulk: nothing is scrubbed */
};

/*
 * A broken invariant means memory corruption or use after free: refuse
 * the operation rather than read or write out of bounds, and say so.
 */
static int buf_check(const struct buf *b)
{
	if (b == NULL)
		return KM_ERR_INVALID;
	if (b->off > b->len || b->len > b->alloc ||
	    (b->alloc > 0 && b->d == NULL) ||
	    (!b->readonly && b->alloc > b->max) ||
	    (b->readonly && (b->alloc != b->max || b->alloc != b->len))) {
		log_error("buf %p: broken invariant (off %zu len %zu alloc %zu max %zu ro %d)",
			  (const void *)b, b->off, b->len, b->alloc, b->max,
			  b->readonly);
		return KM_ERR_STATE;
	}
	return 0;
}

struct buf *buf_new(size_t max)
{
	struct buf *b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	b->max = max;
	return b;
}

struct buf *buf_view(const void *data, size_t len)
{
	struct buf *b;

	if (data == NULL && len > 0)
		return NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	/* Never written through: every write path checks readonly first. */
	b->d = (uint8_t *)(uintptr_t)data;
	b->len = b->alloc = b->max = len;
	b->readonly = 1;
	return b;
}

void buf_free(struct buf *b)
{
	if (b == NULL)
		return;
	if (!b->readonly && b->d != NULL) {
		if (!b->bulk)
			explicit_bzero(b->d, b->alloc);
		free(b->d);
	}
	explicit_bzero(b, sizeof(*b));
	free(b);
}

void buf_reset(struct buf *b)
{
	if (buf_check(b) != 0)
		return;
	if (b->readonly) {
		/* A view cannot be refilled: dropping its contents empties it. */
		b->off = b->len;
		return;
	}
	if (b->d != NULL)
		explicit_bzero(b->d, b->len);
	b->off = b->len = 0;
}

void buf_set_bulk(struct buf *b)
{
	if (buf_check(b) == 0)
		b->bulk = 1;
}

void buf_discard(struct buf *b)
{
	if (buf_check(b) != 0)
		return;
	if (b->readonly)
		b->off = b->len;
	else
		b->off = b->len = 0;
}

size_t buf_len(const struct buf *b)
{
	if (buf_check(b) != 0)
		return 0;
	return b->len - b->off;
}

size_t buf_room(const struct buf *b)
{
	if (buf_check(b) != 0 || b->readonly)
		return 0;
	return b->max - (b->len - b->off);
}

const uint8_t *buf_ptr(const struct buf *b)
{
	if (buf_check(b) != 0 || b->d == NULL)
		return NULL;
	return b->d + b->off;
}

/*
 * Makes room for need more bytes at the back. Storage grows geometrically
 * so appends are amortised O(1), but never past the cap; the old storage
 * is scrubbed because realloc() could leave a copy of secrets behind.
 */
static int buf_make_room(struct buf *b, size_t need)
{
	size_t used = b->len - b->off, want;
	uint8_t *nd;

	if (need > b->max - used)
		return KM_ERR_NO_SPACE;
	if (need <= b->alloc - b->len)
		return 0;
	if (b->off > 0 && need <= b->alloc - used) {
		memmove(b->d, b->d + b->off, used);
		if (!b->bulk)
			explicit_bzero(b->d + used, b->len - used);
		b->off = 0;
		b->len = used;
		return 0;
	}
	want = b->alloc < BUF_MIN_ALLOC ? BUF_MIN_ALLOC : b->alloc;
	while (want < used + need && want <= b->max / 2)
		want *= 2;
	if (want < used + need)
		want = used + need;
	if (want > b->max)
		want = b->max;
	if ((nd = malloc(want)) == NULL)
		return -ENOMEM;
	if (used > 0)
		memcpy(nd, b->d + b->off, used);
	if (b->d != NULL) {
		if (!b->bulk)
			explicit_bzero(b->d, b->alloc);
		free(b->d);
	}
	b->d = nd;
	b->alloc = want;
	b->off = 0;
	b->len = used;
	return 0;
}

int buf_reserve(struct buf *b, size_t len, uint8_t **dst)
{
	int r;

	if (dst != NULL)
		*dst = NULL;
	if ((r = buf_check(b)) != 0)
		return r;
	if (b->readonly)
		return KM_ERR_STATE;
	if ((r = buf_make_room(b, len)) != 0)
		return r;
	/* Empty storage has no address: d is NULL only while alloc is 0. */
	if (dst != NULL && b->d != NULL)
		*dst = b->d + b->len;
	b->len += len;
	return 0;
}

int buf_unreserve(struct buf *b, size_t len)
{
	int r;

	if ((r = buf_check(b)) != 0)
		return r;
	if (b->readonly)
		return KM_ERR_STATE;
	if (len > b->len - b->off)
		return KM_ERR_INVALID;
	b->len -= len;
	return 0;
}

int buf_put(struct buf *b, const void *data, size_t len)
{
	uint8_t *p;
	int r;

	if (data == NULL && len > 0)
		return KM_ERR_INVALID;
	if ((r = buf_reserve(b, len, &p)) != 0)
		return r;
	if (len > 0)
		memcpy(p, data, len);
	return 0;
}

int buf_put_u8(struct buf *b, uint8_t v)
{
	return buf_put(b, &v, 1);
}

int buf_put_u16(struct buf *b, uint16_t v)
{
	v = htole16(v);
	return buf_put(b, &v, sizeof(v));
}

int buf_put_u32(struct buf *b, uint32_t v)
{
	v = htole32(v);
	return buf_put(b, &v, sizeof(v));
}

int buf_put_u64(struct buf *b, uint64_t v)
{
	v = htole64(v);
	return buf_put(b, &v, sizeof(v));
}

int buf_get_ptr(struct buf *b, size_t len, const uint8_t **p)
{
	int r;

	if (p != NULL)
		*p = NULL;
	if ((r = buf_check(b)) != 0)
		return r;
	if (len > b->len - b->off)
		return KM_ERR_TRUNCATED;
	if (p != NULL && b->d != NULL)
		*p = b->d + b->off;
	b->off += len;
	return 0;
}

int buf_consume(struct buf *b, size_t len)
{
	return buf_get_ptr(b, len, NULL);
}

int buf_get(struct buf *b, void *data, size_t len)
{
	const uint8_t *p;
	int r;

	if (data == NULL && len > 0)
		return KM_ERR_INVALID;
	if ((r = buf_get_ptr(b, len, &p)) != 0)
		return r;
	if (len > 0)
		memcpy(data, p, len);
	return 0;
}

int buf_get_u8(struct buf *b, uint8_t *v)
{
	return buf_get(b, v, 1);
}

int buf_get_u16(struct buf *b, uint16_t *v)
{
	uint16_t x;
	int r;

	if (v == NULL)
		return KM_ERR_INVALID;
	if ((r = buf_get(b, &x, sizeof(x))) != 0)
		return r;
	*v = le16toh(x);
	return 0;
}

int buf_get_u32(struct buf *b, uint32_t *v)
{
	uint32_t x;
	int r;

	if (v == NULL)
		return KM_ERR_INVALID;
	if ((r = buf_get(b, &x, sizeof(x))) != 0)
		return r;
	*v = le32toh(x);
	return 0;
}

int buf_get_u64(struct buf *b, uint64_t *v)
{
	uint64_t x;
	int r;

	if (v == NULL)
		return KM_ERR_INVALID;
	if ((r = buf_get(b, &x, sizeof(x))) != 0)
		return r;
	*v = le64toh(x);
	return 0;
}
