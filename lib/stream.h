/*
 * Record streams over a channel: the migration protocol's transport.
 * Writes are gathered into one bounded output buffer and sent when it
 * fills or on stream_flush (so small records do not each cost a TLS
 * record and a syscall). Reads go through a bounded input buffer: a record
 * is handed out only when complete and checksummed, and a declared length
 * above the caller's bound is refused before anything is awaited.
 */
#ifndef KM_STREAM_H
#define KM_STREAM_H

#include <stdint.h>

#include "chan.h"

#define STREAM_OUT_FLUSH	(1U << 20)	/* send once this much is gathered */

struct stream;

/* The stream uses c but does not own it. NULL if out of memory. */
struct stream *stream_new(struct chan *c);
/* NULL-safe; does not close the channel. */
void stream_free(struct stream *s);

/* Appends one record; sends what is gathered once it passes STREAM_OUT_FLUSH. */
int stream_put(struct stream *s, uint32_t type, const void *payload, uint32_t len);
/*
 * Sends one record whose payload is the whole of *payload, taking the
 * buffer: in async mode it is queued as it is (no copy) and *payload is
 * replaced by an empty buffer of the same cap; otherwise it is written
 * and emptied. The caller refills *payload either way.
 */
int stream_put_owned(struct stream *s, uint32_t type, struct buf **payload);
/*
 * Async mode: from now on writes are done by a thread of the stream's
 * own, so that producing records (compressing, copying, checksumming)
 * overlaps encrypting and sending them. stream_put and stream_put_owned
 * return once the record is queued (at most STREAM_QUEUE batches wait);
 * a write error shows at a later put or at stream_flush, which waits
 * until everything queued was written. stream_get flushes first, so the
 * channel is never used by two threads at once. payload_cap: the cap of
 * the buffers stream_put_owned hands back.
 */
int stream_start_writer(struct stream *s, size_t payload_cap);
/*
 * Read-ahead: from now on a thread of the stream's own reads records
 * (and checks their checksums) while the caller works on the previous
 * ones, until it has read a record whose type is in stop_types (bit t
 * for type t < 32) or met an error, which stream_get then returns in
 * order. At most STREAM_QUEUE records wait. A write (put, flush) first
 * stops the reader, dropping what it read ahead, so that the channel is
 * never used by two threads at once: start it only where the peer sends
 * a run of records before expecting an answer.
 */
int stream_start_reader(struct stream *s, uint32_t max_payload, uint32_t stop_types);
/* Stops the read-ahead (waits for its thread); NULL-safe, idempotent. */
void stream_stop_reader(struct stream *s);
/* Appends records already framed (e.g. state__save_all's output). */
int stream_put_framed(struct stream *s, const void *records, size_t len);
/* Sends everything gathered. */
int stream_flush(struct stream *s);

/*
 * Reads until one record is complete. *payload stays valid until the next
 * stream_get. KM_ERR_TOO_LARGE past max_payload, KM_ERR_CORRUPT on a bad
 * checksum, KM_ERR_TRUNCATED if the peer closed mid-record, KM_ERR_END if
 * it closed between records, and the channel's errors.
 */
int stream_get(struct stream *s, uint32_t max_payload, uint32_t *type,
	       const uint8_t **payload, uint32_t *len);

/*
 * After a write failed because the peer went: the record it sent before
 * going (typically its REC_ERROR, the reason), if one arrives within
 * timeout_ms. Stops the writer and the read-ahead; what was queued to be
 * written is dropped. 0 with the record (valid until the next read), or
 * an error. The stream is good for nothing else afterwards.
 */
int stream_get_last_words(struct stream *s, int timeout_ms, uint32_t *type,
			  const uint8_t **payload, uint32_t *len);

/* Bytes handed to and taken from the channel so far (record bytes, before TLS). */
uint64_t stream_bytes_out(const struct stream *s);
uint64_t stream_bytes_in(const struct stream *s);

/*
 * CPU time (ns) of the stream's own writer and reader threads, running or
 * finished, since the stream was made: the encryption and socket work
 * they do for the caller, which the caller's thread clock does not see.
 */
uint64_t stream_threads_cpu_ns(struct stream *s);

/*
 * The REC_HEADER payload every stream starts with: magic, version, caps
 * and the purpose of the connection (enum stream_purpose).
 */
enum stream_purpose {
	STREAM_MIGRATE = 1,	/* a VM follows */
	STREAM_QUERY = 2,	/* a question to the daemon (docs/protocol.md) */
	STREAM_SNAPSHOT = 3,	/* a checkpoint file */
	STREAM_DTRACE = 4,	/* a dirty trace (lib/dtrace.h) */
	STREAM_PURPOSE_LAST = STREAM_DTRACE,	/* readers refuse any above */
};

enum hdr_tag {
	HDR_VERSION_MAJOR = 1,
	HDR_VERSION_MINOR = 2,
	HDR_CAPS = 3,
	HDR_SKIPPABLE = 4,	/* u32[]: record types a reader may skip if unknown */
	HDR_PURPOSE = 5,
};

/* HDR_SKIPPABLE entries a reader keeps; a longer list is KM_ERR_CORRUPT. */
#define STREAM_SKIPPABLE_MAX	32

/* Capabilities (HDR_CAPS bits). */
#define STREAM_CAP_LZ4		(1ULL << 0)	/* REC_PAGES may hold PAGE_LZ4 entries */
#define STREAM_CAPS_KNOWN	(STREAM_CAP_LZ4)

int stream_put_header(struct stream *s, enum stream_purpose purpose, uint64_t caps);
/* The same REC_HEADER payload appended to p, for a writer without a stream (lib/dtrace.c). */
int stream_header_payload(struct buf *p, enum stream_purpose purpose, uint64_t caps);
/*
 * Reads and checks the REC_HEADER (KM_ERR_BAD_MAGIC, KM_ERR_VERSION,
 * KM_ERR_UNSUPPORTED for unknown caps) and gives its purpose and caps.
 */
int stream_get_header(struct stream *s, enum stream_purpose *purpose, uint64_t *caps);
/* The same check on a payload already read. */
int stream_parse_header(const uint8_t *payload, uint32_t len, enum stream_purpose *purpose,
			uint64_t *caps);
/*
 * For a live peer, which can be answered (docs/protocol.md): the same,
 * except that unknown caps are not refused; *offered holds every bit the
 * peer announced, and the reader accepts the subset it supports.
 * A file cannot be answered: its readers use stream_get_header.
 */
int stream_get_header_offer(struct stream *s, enum stream_purpose *purpose, uint64_t *offered);
/*
 * Whether the header read by stream_get_header(_offer) declared record
 * type skippable (HDR_SKIPPABLE) and this reader does not know the type
 * (>= REC_TYPE_MAX): then it skips such a record (its checksum already
 * checked) instead of failing.
 */
bool stream_skippable(const struct stream *s, uint32_t type);
int stream_parse_header_offer(const uint8_t *payload, uint32_t len,
			      enum stream_purpose *purpose, uint64_t *offered);

#endif
