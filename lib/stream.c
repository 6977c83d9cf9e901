/* Record streams over a channel: see stream.h. */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "record.h"
#include "stream-int.h"

/* Input holds at most one maximal record and a read's worth beyond it. */
#define STREAM_IN_MAX	(REC_HDR_SIZE + REC_MAX_PAYLOAD + (256U << 10))
#define STREAM_READ	(256U << 10)

void stream_pool_init(struct stream_pool *p, size_t cap)
{
	pthread_mutex_init(&p->lock, NULL);
	p->n = 0;
	p->cap = cap;
}

struct buf *stream_pool_get(struct stream_pool *p)
{
	struct buf *b = NULL;

	pthread_mutex_lock(&p->lock);
	if (p->n > 0)
		b = p->b[--p->n];
	pthread_mutex_unlock(&p->lock);
	if (!b && (b = buf_new(p->cap)) != NULL)
		buf_set_bulk(b);
	return b;
}

void stream_pool_put(struct stream_pool *p, struct buf *b)
{
	if (!b)
		return;
	buf_discard(b);
	pthread_mutex_lock(&p->lock);
	if (p->n < sizeof(p->b) / sizeof(p->b[0])) {
		p->b[p->n++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	buf_free(b);
}

void stream_pool_destroy(struct stream_pool *p)
{
	while (p->n > 0)
		buf_free(p->b[--p->n]);
	pthread_mutex_destroy(&p->lock);
}

struct stream *stream_new(struct chan *c)
{
	struct stream *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->c = c;
	s->in = buf_new(STREAM_IN_MAX);
	s->out = buf_new(STREAM_OUT_FLUSH + REC_HDR_SIZE + REC_MAX_PAYLOAD);
	if (!s->in || !s->out) {
		stream_free(s);
		return NULL;
	}
	/* Page batches pass through both: not secrets (see buf_discard). */
	buf_set_bulk(s->in);
	buf_set_bulk(s->out);
	return s;
}

void stream_free(struct stream *s)
{
	if (!s)
		return;
	stream_stop_reader(s);
	stream_async_stop(s);
	buf_free(s->in);
	buf_free(s->out);
	free(s);
}

int stream_flush(struct stream *s)
{
	size_t len = buf_len(s->out);
	int r;

	/* One thread on the channel at a time: a write ends the read-ahead. */
	stream_stop_reader(s);
	if (s->w)
		return stream_async_flush(s);
	if (len == 0)
		return 0;
	if ((r = chan_write(s->c, buf_ptr(s->out), len)) != 0)
		return r;
	s->bytes_out += len;
	buf_discard(s->out);
	return 0;
}

/* Async: hands the gathered records to the writer and starts a new buffer. */
static int stream_hand_over(struct stream *s)
{
	struct buf *b = s->out;
	int r;

	if (buf_len(b) == 0)
		return 0;
	if (!(s->out = stream_async_buf(s, true))) {
		s->out = b;
		return -ENOMEM;
	}
	s->bytes_out += buf_len(b);
	r = stream_async_enqueue(s, b, 0, true);
	return r;
}

int stream_put_owned(struct stream *s, uint32_t type, struct buf **payload)
{
	struct buf *b = *payload;
	int r;

	if (!s->w) {
		r = stream_put(s, type, buf_ptr(b), (uint32_t)buf_len(b));
		buf_discard(b);
		return r;
	}
	if (buf_len(b) > REC_MAX_PAYLOAD)
		return KM_ERR_TOO_LARGE;
	/* Order: what was gathered before this record goes first. */
	if ((r = stream_hand_over(s)) != 0)
		return r;
	if (!(*payload = stream_async_buf(s, false))) {
		*payload = b;
		return -ENOMEM;
	}
	s->bytes_out += REC_HDR_SIZE + buf_len(b);
	return stream_async_enqueue(s, b, type, false);
}

int stream_put(struct stream *s, uint32_t type, const void *payload, uint32_t len)
{
	int r;

	/* Page batches take stream_put_owned; what comes here is small and gathered. */
	if ((r = rec_put(s->out, type, payload, len)) != 0)
		return r;
	if (buf_len(s->out) < STREAM_OUT_FLUSH)
		return 0;
	return s->w ? stream_hand_over(s) : stream_flush(s);
}

int stream_put_framed(struct stream *s, const void *records, size_t len)
{
	int r;

	if ((r = stream_flush(s)) != 0)
		return r;
	if ((r = chan_write(s->c, records, len)) != 0)
		return r;
	s->bytes_out += len;
	return 0;
}

int stream_get(struct stream *s, uint32_t max_payload, uint32_t *type,
	       const uint8_t **payload, uint32_t *len)
{
	int r;

	if (s->rd) {
		r = stream_reader_get(s, type, payload, len);
		if (r != KM_ERR_STATE)
			return r;
		/* The reader is done and drained: read here again. */
		stream_stop_reader(s);
	}
	/* One thread on the channel at a time: reads wait for queued writes. */
	if (s->w && (r = stream_async_flush(s)) != 0)
		return r;
	return stream_get_direct(s, max_payload, type, payload, len);
}

int stream_get_last_words(struct stream *s, int timeout_ms, uint32_t *type,
			  const uint8_t **payload, uint32_t *len)
{
	int r;

	stream_stop_reader(s);
	stream_async_stop(s);	/* the channel is this thread's alone now */
	buf_discard(s->out);
	if ((r = chan_set_timeout(s->c, timeout_ms)) != 0)
		return r;
	return stream_get_direct(s, 64 * 1024, type, payload, len);
}

/* One read into the input buffer: 0, KM_ERR_END (orderly close), or an error. */
static int stream_fill(struct stream *s)
{
	uint8_t *dst;
	int64_t n;
	int r;

	/* Room for the rest of a record is guaranteed by STREAM_IN_MAX. */
	if ((r = buf_reserve(s->in, STREAM_READ, &dst)) != 0)
		return r;
	n = chan_read(s->c, dst, STREAM_READ);
	buf_unreserve(s->in, STREAM_READ - (n > 0 ? (size_t)n : 0));
	if (n < 0)
		return (int)n;
	s->bytes_in += (uint64_t)n;
	return 0;
}

int stream_get_direct(struct stream *s, uint32_t max_payload, uint32_t *type,
		      const uint8_t **payload, uint32_t *len)
{
	int r;

	for (;;) {
		r = rec_get(s->in, max_payload, type, payload, len);
		if (r != KM_ERR_TRUNCATED)
			return r;
		if ((r = stream_fill(s)) == KM_ERR_END)
			return buf_len(s->in) ? KM_ERR_TRUNCATED : KM_ERR_END;
		if (r != 0)
			return r;
	}
}

int stream_get_into(struct stream *s, uint32_t max_payload, uint32_t *type, struct buf *dst)
{
	uint8_t hdr[REC_HDR_SIZE], want[REC_HDR_SIZE], *p;
	uint32_t t, len;
	size_t have;
	int r;

	if (buf_len(dst) != 0)
		return KM_ERR_INVALID;
	while (buf_len(s->in) < REC_HDR_SIZE) {
		if ((r = stream_fill(s)) == KM_ERR_END)
			return buf_len(s->in) ? KM_ERR_TRUNCATED : KM_ERR_END;
		if (r != 0)
			return r;
	}
	memcpy(hdr, buf_ptr(s->in), REC_HDR_SIZE);
	memcpy(&t, hdr, 4);
	memcpy(&len, hdr + 4, 4);
	t = le32toh(t);
	len = le32toh(len);
	/* Bounded before anything is awaited or allocated, as rec_get does. */
	if (len > max_payload || len > REC_MAX_PAYLOAD)
		return KM_ERR_TOO_LARGE;
	buf_consume(s->in, REC_HDR_SIZE);
	have = buf_len(s->in) < len ? buf_len(s->in) : len;
	if ((r = buf_put(dst, buf_ptr(s->in), have)) != 0)
		return r;
	buf_consume(s->in, have);
	if (len > have) {
		/* The rest goes straight where it is wanted, not through in. */
		if ((r = buf_reserve(dst, len - have, &p)) != 0)
			return r;
		if ((r = chan_read_full(s->c, p, len - have)) != 0)
			return r == KM_ERR_END ? KM_ERR_TRUNCATED : r;
		s->bytes_in += len - have;
	}
	if ((r = rec_header(t, buf_ptr(dst), len, want)) != 0)
		return r;
	if (memcmp(want + 8, hdr + 8, 8) != 0)
		return KM_ERR_CORRUPT;
	*type = t;
	return 0;
}

uint64_t stream_bytes_out(const struct stream *s)
{
	return s->bytes_out + buf_len(s->out);
}

uint64_t stream_bytes_in(const struct stream *s)
{
	return s->bytes_in;
}

uint64_t stream_threads_cpu_ns(struct stream *s)
{
	uint64_t ns = s->stopped_cpu_ns;

	/* Under each thread's lock it cannot return between the check and the read. */
	if (s->w) {
		pthread_mutex_lock(&s->w->lock);
		ns += s->w->exited ? s->w->cpu_ns : stream_thread_cpu_ns(s->w->thread);
		pthread_mutex_unlock(&s->w->lock);
	}
	if (s->rd) {
		pthread_mutex_lock(&s->rd->lock);
		ns += s->rd->done ? s->rd->cpu_ns : stream_thread_cpu_ns(s->rd->thread);
		pthread_mutex_unlock(&s->rd->lock);
	}
	return ns;
}

int stream_header_payload(struct buf *p, enum stream_purpose purpose, uint64_t caps)
{
	int r;

	if ((r = buf_put(p, REC_MAGIC, 8)) != 0 ||
	    (r = rec_put_field_u64(p, HDR_VERSION_MAJOR, REC_VERSION)) != 0 ||
	    (r = rec_put_field_u64(p, HDR_VERSION_MINOR, 0)) != 0 ||
	    (r = rec_put_field_u64(p, HDR_CAPS, caps)) != 0)
		return r;
	return rec_put_field_u64(p, HDR_PURPOSE, purpose);
}

int stream_put_header(struct stream *s, enum stream_purpose purpose, uint64_t caps)
{
	struct buf *p = buf_new(256);
	int r;

	if (!p)
		return -ENOMEM;
	if ((r = stream_header_payload(p, purpose, caps)) == 0)
		r = stream_put(s, REC_HEADER, buf_ptr(p), (uint32_t)buf_len(p));
	buf_free(p);
	return r;
}

/* HDR_SKIPPABLE: u32 record types, little-endian, at most STREAM_SKIPPABLE_MAX. */
static int stream_parse_skippable(const uint8_t *d, uint32_t flen, uint32_t *types,
				  unsigned int *n)
{
	uint32_t i, v;

	if (flen % 4 || flen / 4 > STREAM_SKIPPABLE_MAX)
		return KM_ERR_CORRUPT;
	for (i = 0; i < flen / 4; i++) {
		memcpy(&v, d + 4 * i, 4);
		types[i] = le32toh(v);
	}
	*n = flen / 4;
	return 0;
}

/* The header's fields; skippable types into s if s is not NULL. */
static int stream_parse_header_as(const uint8_t *payload, uint32_t len,
				  enum stream_purpose *purpose, uint64_t *caps, bool strict,
				  struct stream *s)
{
	uint32_t skip[STREAM_SKIPPABLE_MAX];
	unsigned int nskip = 0;
	uint64_t major = 0, v = 0;
	const uint8_t *d;
	uint32_t tag, flen;
	struct buf *f;
	int r;

	if (len < 8 || memcmp(payload, REC_MAGIC, 8) != 0)
		return KM_ERR_BAD_MAGIC;
	if (!(f = buf_view(payload + 8, len - 8)))
		return -ENOMEM;
	*caps = 0;
	*purpose = 0;
	while ((r = rec_get_field(f, &tag, &d, &flen)) == 0) {
		switch (tag) {
		case HDR_VERSION_MAJOR:
			r = rec_field_u64(d, flen, &major);
			break;
		case HDR_CAPS:
			r = rec_field_u64(d, flen, caps);
			break;
		case HDR_SKIPPABLE:
			r = stream_parse_skippable(d, flen, skip, &nskip);
			break;
		case HDR_PURPOSE:
			/* Range-checked on the u64, before any narrowing. */
			if ((r = rec_field_u64(d, flen, &v)) == 0)
				*purpose = v >= STREAM_MIGRATE && v <= STREAM_PURPOSE_LAST ?
					   (enum stream_purpose)v : 0;
			break;
		default:	/* unknown fields are skipped (docs/format.md s.3) */
			break;
		}
		if (r != 0)
			goto out;
	}
	if (r != KM_ERR_END) {
		/* A field running past a complete record: the record is corrupt. */
		if (r == KM_ERR_TRUNCATED)
			r = KM_ERR_CORRUPT;
		goto out;
	}
	if (major != REC_VERSION)
		r = KM_ERR_VERSION;
	else if (strict && (*caps & ~STREAM_CAPS_KNOWN))
		r = KM_ERR_UNSUPPORTED;
	else if (*purpose < STREAM_MIGRATE || *purpose > STREAM_PURPOSE_LAST)
		r = KM_ERR_CORRUPT;
	else
		r = 0;
	if (r == 0 && s) {
		memcpy(s->skippable, skip, nskip * sizeof(skip[0]));
		s->nr_skippable = nskip;
	}
out:
	buf_free(f);
	return r;
}

int stream_parse_header(const uint8_t *payload, uint32_t len, enum stream_purpose *purpose,
			uint64_t *caps)
{
	return stream_parse_header_as(payload, len, purpose, caps, true, NULL);
}

int stream_parse_header_offer(const uint8_t *payload, uint32_t len,
			      enum stream_purpose *purpose, uint64_t *offered)
{
	return stream_parse_header_as(payload, len, purpose, offered, false, NULL);
}

static int stream_get_header_as(struct stream *s, enum stream_purpose *purpose, uint64_t *caps,
				bool strict)
{
	const uint8_t *p;
	uint32_t type, len;
	int r;

	if ((r = stream_get(s, 4096, &type, &p, &len)) != 0)
		return r;
	if (type != REC_HEADER)
		return KM_ERR_BAD_MAGIC;
	return stream_parse_header_as(p, len, purpose, caps, strict, s);
}

int stream_get_header(struct stream *s, enum stream_purpose *purpose, uint64_t *caps)
{
	return stream_get_header_as(s, purpose, caps, true);
}

int stream_get_header_offer(struct stream *s, enum stream_purpose *purpose, uint64_t *offered)
{
	return stream_get_header_as(s, purpose, offered, false);
}

bool stream_skippable(const struct stream *s, uint32_t type)
{
	unsigned int i;

	/* Only types this reader does not know: a known one is never skipped. */
	if (type < REC_TYPE_MAX)
		return false;
	for (i = 0; i < s->nr_skippable; i++)
		if (s->skippable[i] == type)
			return true;
	return false;
}
