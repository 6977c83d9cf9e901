/*
 * The read-ahead of a record stream (stream.h, stream_start_reader): a
 * thread that reads records off the channel (TLS decryption, checksums)
 * into buffers of their own while the consumer applies the previous ones
 * (on a migration's destination: decompressing and copying pages into
 * guest memory, which faults it in).
 *
 * Timeline: the thread reads record k+1 while the consumer applies record
 * k; a full queue makes the thread wait. It exits after a record of a
 * stop type (REC_END: the source now waits for an answer) or after an
 * error, which it queues in order. stream_stop_reader wakes and joins it;
 * the thread may be inside a read only while the peer is still sending,
 * so the join is bounded by the channel's I/O timeout.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "record.h"
#include "stream-int.h"

/* Under the lock: waits for room; false if asked to stop meanwhile. */
static bool stream_reader_room(struct stream_reader *rd)
{
	while (rd->n == STREAM_QUEUE && !rd->stop)
		pthread_cond_wait(&rd->cond, &rd->lock);
	return !rd->stop;
}

static void *stream_reader_thread(void *arg)
{
	struct stream *s = arg;
	struct stream_reader *rd = s->rd;
	struct stream_rec rec;
	uint32_t type = 0;
	bool last;
	int r;

	for (;;) {
		memset(&rec, 0, sizeof(rec));
		if (!(rec.b = stream_pool_get(&rd->pool)))
			r = -ENOMEM;
		else if ((r = stream_get_into(s, rd->max_payload, &type, rec.b)) != 0)
			stream_pool_put(&rd->pool, rec.b);
		if (r != 0)
			rec.b = NULL;
		rec.type = type;
		rec.err = r;
		last = r != 0 || (type < 32 && (rd->stop_types & (1U << type)));
		pthread_mutex_lock(&rd->lock);
		if (!stream_reader_room(rd)) {
			pthread_mutex_unlock(&rd->lock);
			buf_free(rec.b);
			break;
		}
		rd->q[(rd->head + rd->n) % STREAM_QUEUE] = rec;
		rd->n++;
		pthread_cond_broadcast(&rd->cond);
		pthread_mutex_unlock(&rd->lock);
		if (last)
			break;
	}
	pthread_mutex_lock(&rd->lock);
	rd->cpu_ns = stream_thread_cpu_ns(pthread_self());
	rd->done = true;
	pthread_cond_broadcast(&rd->cond);
	pthread_mutex_unlock(&rd->lock);
	return NULL;
}

int stream_start_reader(struct stream *s, uint32_t max_payload, uint32_t stop_types)
{
	struct stream_reader *rd;
	int r;

	if (s->rd)
		return KM_ERR_STATE;
	/* Whatever we still had to say goes out before the thread owns reading. */
	if ((r = stream_flush(s)) != 0)
		return r;
	if (!(rd = calloc(1, sizeof(*rd))))
		return -ENOMEM;
	pthread_mutex_init(&rd->lock, NULL);
	pthread_cond_init(&rd->cond, NULL);
	rd->max_payload = max_payload;
	stream_pool_init(&rd->pool, REC_MAX_PAYLOAD);
	rd->stop_types = stop_types;
	s->rd = rd;
	if ((r = pthread_create(&rd->thread, NULL, stream_reader_thread, s)) != 0) {
		s->rd = NULL;
		stream_pool_destroy(&rd->pool);
		pthread_cond_destroy(&rd->cond);
		pthread_mutex_destroy(&rd->lock);
		free(rd);
		return -r;
	}
	return 0;
}

int stream_reader_get(struct stream *s, uint32_t *type, const uint8_t **payload,
		      uint32_t *len)
{
	struct stream_reader *rd = s->rd;
	struct stream_rec rec;

	stream_pool_put(&rd->pool, rd->cur);
	rd->cur = NULL;
	pthread_mutex_lock(&rd->lock);
	while (rd->n == 0 && !rd->done)
		pthread_cond_wait(&rd->cond, &rd->lock);
	if (rd->n == 0) {
		pthread_mutex_unlock(&rd->lock);
		return KM_ERR_STATE;	/* drained: the caller reads directly */
	}
	rec = rd->q[rd->head];
	rd->head = (rd->head + 1) % STREAM_QUEUE;
	rd->n--;
	pthread_cond_broadcast(&rd->cond);
	pthread_mutex_unlock(&rd->lock);
	if (rec.err)
		return rec.err;
	rd->cur = rec.b;
	*type = rec.type;
	*payload = buf_ptr(rec.b);
	*len = (uint32_t)buf_len(rec.b);
	return 0;
}

void stream_stop_reader(struct stream *s)
{
	struct stream_reader *rd = s->rd;

	if (!rd)
		return;
	pthread_mutex_lock(&rd->lock);
	rd->stop = true;
	pthread_cond_broadcast(&rd->cond);
	pthread_mutex_unlock(&rd->lock);
	pthread_join(rd->thread, NULL);
	s->stopped_cpu_ns += rd->cpu_ns;
	while (rd->n > 0) {
		buf_free(rd->q[rd->head].b);
		rd->head = (rd->head + 1) % STREAM_QUEUE;
		rd->n--;
	}
	buf_free(rd->cur);
	stream_pool_destroy(&rd->pool);
	pthread_cond_destroy(&rd->cond);
	pthread_mutex_destroy(&rd->lock);
	free(rd);
	s->rd = NULL;
}
