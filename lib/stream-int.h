/* Internals of lib/stream*.c (see stream.h); nothing else includes this. */
#ifndef KM_STREAM_INT_H
#define KM_STREAM_INT_H

#include <pthread.h>
#include <stdbool.h>

#include "buf.h"
#include "stream.h"

#define STREAM_QUEUE	4	/* batches in flight between producer and writer */

/* One unit of work for the writer thread. */
struct stream_item {
	struct buf *b;
	uint32_t type;		/* payload items: the record type */
	bool framed;		/* b holds whole records (else one record's payload) */
};

struct stream_writer {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* any change below */
	struct stream_item q[STREAM_QUEUE];
	unsigned int head, n;
	bool busy;		/* the thread is writing an item */
	bool stop;
	int err;		/* the first write error; later puts fail with it */
	/* Empty buffers to reuse: [0] gather buffers, [1] owned payloads. */
	struct buf *pool[2][STREAM_QUEUE + 2];
	unsigned int npool[2];
	size_t cap[2];
};

/* A record the reader thread took off the channel, or the error it met. */
struct stream_rec {
	struct buf *b;		/* the payload; NULL for an error */
	uint32_t type;
	int err;
};

struct stream_reader {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* any change below */
	struct stream_rec q[STREAM_QUEUE];
	unsigned int head, n;
	bool done;		/* the thread has exited (after a stop type or an error) */
	bool stop;		/* asked to stop */
	uint32_t max_payload;
	uint32_t stop_types;	/* bit t: stop after a record of type t (< 32) */
	struct buf *cur;	/* the payload handed out by the last stream_get */
	struct buf *pool[STREAM_QUEUE + 2];	/* emptied payload buffers to reuse */
	unsigned int npool;
};

struct stream {
	struct chan *c;
	struct buf *in;
	struct buf *out;	/* small records gathered (sync and async) */
	uint64_t bytes_out, bytes_in;
	struct stream_writer *w;	/* NULL: writes happen on the caller's thread */
	struct stream_reader *rd;	/* NULL: reads happen on the caller's thread */
};

/* Reads one record from the channel on the caller's thread (stream.c). */
int stream_get_direct(struct stream *s, uint32_t max_payload, uint32_t *type,
		      const uint8_t **payload, uint32_t *len);
/*
 * Reads one record into the empty dst (its payload only): what is not yet
 * buffered goes straight into dst, one copy fewer than stream_get_direct.
 * The same bounds and checksum as rec_get; a failure leaves the stream
 * unusable (a record may be half consumed).
 */
int stream_get_into(struct stream *s, uint32_t max_payload, uint32_t *type, struct buf *dst);
/* The reader side of stream_get in async mode (stream-reader.c). */
int stream_reader_get(struct stream *s, uint32_t *type, const uint8_t **payload,
		      uint32_t *len);

/* The writer side of stream_flush/stream_put in async mode (stream-async.c). */
int stream_async_enqueue(struct stream *s, struct buf *b, uint32_t type, bool framed);
int stream_async_flush(struct stream *s);
void stream_async_stop(struct stream *s);
/* A fresh empty buffer: a gather buffer (for s->out) or a payload buffer. */
struct buf *stream_async_buf(struct stream *s, bool gather);

#endif
