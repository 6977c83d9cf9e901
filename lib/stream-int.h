/* Internals of lib/stream*.c (see stream.h); nothing else includes this. */
#ifndef KM_STREAM_INT_H
#define KM_STREAM_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "buf.h"
#include "stream.h"

#define STREAM_QUEUE	4	/* batches in flight between producer and writer */

/*
 * Emptied bulk buffers kept for reuse between the stream's threads, so
 * that megabyte batches are not allocated (and faulted in) over and over.
 * It has its own lock, taken last.
 */
struct stream_pool {
	pthread_mutex_t lock;
	struct buf *b[STREAM_QUEUE + 2];
	unsigned int n;
	size_t cap;		/* of the buffers it makes */
};

void stream_pool_init(struct stream_pool *p, size_t cap);
/* A recycled buffer, or a new bulk one of the pool's cap; NULL if out of memory. */
struct buf *stream_pool_get(struct stream_pool *p);
/* Takes b back (emptied without scrubbing), or frees it if the pool is full. NULL-safe. */
void stream_pool_put(struct stream_pool *p, struct buf *b);
void stream_pool_destroy(struct stream_pool *p);

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
	bool exited;		/* the thread has returned; cpu_ns is final */
	uint64_t cpu_ns;	/* the thread's CPU time when it returned */
	struct stream_pool pool[2];	/* [0] gather buffers, [1] owned payloads */
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
	uint64_t cpu_ns;	/* the thread's CPU time when it exited */
	bool stop;		/* asked to stop */
	uint32_t max_payload;
	uint32_t stop_types;	/* bit t: stop after a record of type t (< 32) */
	struct buf *cur;	/* the payload handed out by the last stream_get */
	struct stream_pool pool;	/* payload buffers */
};

struct stream {
	struct chan *c;
	struct buf *in;
	struct buf *out;	/* small records gathered (sync and async) */
	uint64_t bytes_out, bytes_in;
	uint64_t stopped_cpu_ns;	/* CPU time of the stream's threads already joined */
	uint32_t skippable[STREAM_SKIPPABLE_MAX];	/* from the header read (HDR_SKIPPABLE) */
	unsigned int nr_skippable;
	struct stream_writer *w;	/* NULL: writes happen on the caller's thread */
	struct stream_reader *rd;	/* NULL: reads happen on the caller's thread */
};

/* CPU time of thread t (0 if it cannot be read); of the caller with pthread_self(). */
static inline uint64_t stream_thread_cpu_ns(pthread_t t)
{
	struct timespec ts;
	clockid_t id;

	if (pthread_getcpuclockid(t, &id) != 0 || clock_gettime(id, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

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
static inline struct buf *stream_async_buf(struct stream *s, bool gather)
{
	return stream_pool_get(&s->w->pool[gather ? 0 : 1]);
}

#endif
