/*
 * Bounded byte buffers in the spirit of OpenSSH's sshbuf. Every byte from a
 * socket or a file is parsed through one of these; every length is checked
 * against what is present before it is used. A buffer holds the bytes
 * [off, len) of its storage; reads consume from the front, writes append
 * at the back, and the unread bytes never exceed the cap given at creation
 * (consumed bytes are reclaimed). Pointers into a buffer (buf_ptr,
 * buf_get_ptr, buf_reserve) stay valid until the next append or reset.
 * Multi-byte integers are little-endian on the wire. Not thread-safe: one
 * buffer, one thread at a time.
 */
#ifndef KM_BUF_H
#define KM_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf;

/* A new empty buffer that may grow to max bytes; NULL if out of memory. */
struct buf *buf_new(size_t max);
/*
 * A read-only view of len bytes at data, which the caller keeps alive and
 * unchanged while the view exists. Writes to a view fail with KM_ERR_STATE.
 */
struct buf *buf_view(const void *data, size_t len);
/* NULL-safe. Scrubs the contents (they may be keys or guest memory). */
void buf_free(struct buf *b);
/* Drops all contents (scrubbed), keeps the cap. */
void buf_reset(struct buf *b);
/*
 * Drops all contents without scrubbing them: for buffers refilled at once
 * with bulk data no more secret than where it came from (guest pages in
 * flight, which the guest's own memory holds anyway). Saves a pass over
 * every byte on the migration's hot path.
 */
void buf_discard(struct buf *b);
/*
 * Marks b as holding bulk data of that kind for good: growing, compacting
 * and freeing it no longer scrub (a stream's input, page batches).
 */
void buf_set_bulk(struct buf *b);

size_t buf_len(const struct buf *b);		/* unread bytes */
size_t buf_room(const struct buf *b);		/* bytes that may still be appended */
const uint8_t *buf_ptr(const struct buf *b);	/* the first unread byte; NULL if none ever stored */

/* Appends, all or nothing. 0, or KM_ERR_NO_SPACE past the cap, or -ENOMEM. */
int buf_put(struct buf *b, const void *data, size_t len);
int buf_put_u8(struct buf *b, uint8_t v);
int buf_put_u16(struct buf *b, uint16_t v);
int buf_put_u32(struct buf *b, uint32_t v);
int buf_put_u64(struct buf *b, uint64_t v);
/* Appends len bytes and gives a pointer to fill them (valid until the next call). */
int buf_reserve(struct buf *b, size_t len, uint8_t **dst);
/*
 * Drops the last len bytes appended (the unused tail of a reservation).
 * KM_ERR_INVALID if fewer unread bytes are present.
 */
int buf_unreserve(struct buf *b, size_t len);

/* Consuming reads. 0, or KM_ERR_TRUNCATED if fewer bytes are present (nothing consumed). */
int buf_get(struct buf *b, void *data, size_t len);
int buf_get_u8(struct buf *b, uint8_t *v);
int buf_get_u16(struct buf *b, uint16_t *v);
int buf_get_u32(struct buf *b, uint32_t *v);
int buf_get_u64(struct buf *b, uint64_t *v);
/* Points at the next len bytes and consumes them (no copy). */
int buf_get_ptr(struct buf *b, size_t len, const uint8_t **p);
int buf_consume(struct buf *b, size_t len);

#endif
