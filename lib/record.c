/*
 * The record codec (see record.h and docs/format.md).
 *
 * The checksum covers bytes 0..7 of the header (type and length) and then
 * the payload, i.e. everything except the checksum itself. XXH3's streaming
 * API gives the same value as one-shot XXH3_64bits() (seed 0) over that
 * concatenation, which is how docs/format.md defines it.
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include <xxhash.h>

#include "err.h"
#include "record.h"

/* XXH3 of (type, len, payload); -ENOMEM if the hash state cannot be made. */
static int rec_checksum(const uint8_t hdr[8], const void *payload, uint32_t len,
			uint64_t *sum)
{
	XXH3_state_t *st;
	int r = -ENOMEM;

	/*
	 * The state's layout is only public to static links; a heap state
	 * keeps us on the stable ABI of the shared libxxhash.
	 */
	if ((st = XXH3_createState()) == NULL)
		return -ENOMEM;
	if (XXH3_64bits_reset(st) != XXH_OK ||
	    XXH3_64bits_update(st, hdr, 8) != XXH_OK ||
	    (len > 0 && XXH3_64bits_update(st, payload, len) != XXH_OK))
		goto out;
	*sum = XXH3_64bits_digest(st);
	r = 0;
out:
	XXH3_freeState(st);
	return r;
}

static uint32_t rec_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t rec_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

int rec_put(struct buf *out, uint32_t type, const void *payload, uint32_t len)
{
	uint8_t hdr[REC_HDR_SIZE], *p;
	int r;

	if ((r = rec_header(type, payload, len, hdr)) != 0)
		return r;
	/* One reservation: either the whole record is appended or nothing. */
	if ((r = buf_reserve(out, REC_HDR_SIZE + (size_t)len, &p)) != 0)
		return r;
	memcpy(p, hdr, REC_HDR_SIZE);
	if (len > 0)
		memcpy(p + REC_HDR_SIZE, payload, len);
	return 0;
}

int rec_header(uint32_t type, const void *payload, uint32_t len, uint8_t hdr[REC_HDR_SIZE])
{
	uint32_t v;
	uint64_t sum;
	int r;

	if (payload == NULL && len > 0)
		return KM_ERR_INVALID;
	if (len > REC_MAX_PAYLOAD)
		return KM_ERR_TOO_LARGE;
	v = htole32(type);
	memcpy(hdr, &v, 4);
	v = htole32(len);
	memcpy(hdr + 4, &v, 4);
	if ((r = rec_checksum(hdr, payload, len, &sum)) != 0)
		return r;
	sum = htole64(sum);
	memcpy(hdr + 8, &sum, 8);
	return 0;
}

int rec_frame(const uint8_t *p, size_t avail, uint32_t max_payload, uint32_t *type,
	      uint32_t *len)
{
	uint32_t n;

	if (max_payload > REC_MAX_PAYLOAD)
		max_payload = REC_MAX_PAYLOAD;
	if (avail < REC_HDR_SIZE)
		return KM_ERR_TRUNCATED;
	n = rec_le32(p + 4);
	/*
	 * The length is bounded before we wait for the payload, so a stream
	 * reader learns "too large" from the header alone and never buffers
	 * or allocates for a length it would refuse.
	 */
	if (n > max_payload)
		return KM_ERR_TOO_LARGE;
	if (avail - REC_HDR_SIZE < n)
		return KM_ERR_TRUNCATED;
	*type = rec_le32(p);
	*len = n;
	return 0;
}

int rec_verify(const uint8_t *p)
{
	uint64_t sum;
	int r;

	if ((r = rec_checksum(p, p + REC_HDR_SIZE, rec_le32(p + 4), &sum)) != 0)
		return r;
	return sum == rec_le64(p + 8) ? 0 : KM_ERR_CORRUPT;
}

int rec_get(struct buf *in, uint32_t max_payload, uint32_t *type,
	    const uint8_t **payload, uint32_t *len)
{
	const uint8_t *p;
	uint32_t t, n;
	int r;

	if (in == NULL)
		return KM_ERR_INVALID;
	p = buf_ptr(in);
	if ((r = rec_frame(p, buf_len(in), max_payload, &t, &n)) != 0)
		return r;
	if ((r = rec_verify(p)) != 0)
		return r;
	if ((r = buf_consume(in, REC_HDR_SIZE + (size_t)n)) != 0)
		return r;
	if (type != NULL)
		*type = t;
	if (payload != NULL)
		*payload = p + REC_HDR_SIZE;
	if (len != NULL)
		*len = n;
	return 0;
}

int rec_put_field(struct buf *payload, uint32_t tag, const void *data, uint32_t len)
{
	uint32_t v;
	uint8_t *p;
	int r;

	if (data == NULL && len > 0)
		return KM_ERR_INVALID;
	if ((r = buf_reserve(payload, 8 + (size_t)len, &p)) != 0)
		return r;
	v = htole32(tag);
	memcpy(p, &v, 4);
	v = htole32(len);
	memcpy(p + 4, &v, 4);
	if (len > 0)
		memcpy(p + 8, data, len);
	return 0;
}

int rec_put_field_u64(struct buf *payload, uint32_t tag, uint64_t v)
{
	v = htole64(v);
	return rec_put_field(payload, tag, &v, sizeof(v));
}

int rec_get_field(struct buf *payload, uint32_t *tag, const uint8_t **data,
		  uint32_t *len)
{
	const uint8_t *p;
	size_t avail;
	uint32_t n;
	int r;

	if (payload == NULL)
		return KM_ERR_INVALID;
	avail = buf_len(payload);
	if (avail == 0)
		return KM_ERR_END;
	if (avail < 8)
		return KM_ERR_TRUNCATED;
	p = buf_ptr(payload);
	n = rec_le32(p + 4);
	if (avail - 8 < n)
		return KM_ERR_TRUNCATED;
	if ((r = buf_consume(payload, 8 + (size_t)n)) != 0)
		return r;
	if (tag != NULL)
		*tag = rec_le32(p);
	if (data != NULL)
		*data = p + 8;
	if (len != NULL)
		*len = n;
	return 0;
}

int rec_field_u64(const uint8_t *data, uint32_t len, uint64_t *v)
{
	if (len != sizeof(*v) || data == NULL)
		return KM_ERR_CORRUPT;
	*v = rec_le64(data);
	return 0;
}

int rec_find_field(const uint8_t *payload, uint32_t len, uint32_t tag, const uint8_t **data,
		   uint32_t *dlen)
{
	struct buf *f = buf_view(payload, len);
	const uint8_t *d;
	uint32_t t, flen;
	int r, found = KM_ERR_END;

	if (!f)
		return len ? -ENOMEM : KM_ERR_END;
	while ((r = rec_get_field(f, &t, &d, &flen)) == 0) {
		if (t == tag) {
			*data = d;
			*dlen = flen;
			found = 0;
		}
	}
	buf_free(f);
	return r == KM_ERR_END ? found : KM_ERR_CORRUPT;
}

int rec_find_u64(const uint8_t *payload, uint32_t len, uint32_t tag, uint64_t *v)
{
	const uint8_t *d;
	uint32_t flen;
	int r;

	if ((r = rec_find_field(payload, len, tag, &d, &flen)) != 0)
		return r;
	return rec_field_u64(d, flen, v);
}
