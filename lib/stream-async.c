/*
 * The async writer of a record stream (stream.h, stream_start_writer): a
 * thread that takes whole batches from a small queue and writes them to
 * the channel, while the producer prepares the next ones.
 *
 * Timeline of a migration round: the producer fills batch k+1 (lz4,
 * copies) while the writer encrypts and sends batch k; a full queue makes
 * the producer wait, so at most STREAM_QUEUE batches are in memory. The
 * first write error sticks: every later put and flush returns it, and
 * the queue is drained without writing.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "err.h"
#include "record.h"
#include "stream-int.h"

static int stream_async_write(struct stream *s, const struct stream_item *it)
{
	uint8_t hdr[REC_HDR_SIZE];
	int r;

	if (it->framed)
		return chan_write(s->c, buf_ptr(it->b), buf_len(it->b));
	/* The checksum is computed here, off the producer's thread. */
	if ((r = rec_header(it->type, buf_ptr(it->b), (uint32_t)buf_len(it->b), hdr)) != 0 ||
	    (r = chan_write(s->c, hdr, sizeof(hdr))) != 0)
		return r;
	return chan_write(s->c, buf_ptr(it->b), buf_len(it->b));
}

static void *stream_async_thread(void *arg)
{
	struct stream *s = arg;
	struct stream_writer *w = s->w;
	struct stream_item it;
	int r;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->n == 0 && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->n == 0)
			break;
		it = w->q[w->head];
		w->head = (w->head + 1) % STREAM_QUEUE;
		w->n--;
		w->busy = true;
		r = w->err;
		pthread_mutex_unlock(&w->lock);
		if (r == 0)
			r = stream_async_write(s, &it);
		pthread_mutex_lock(&w->lock);
		if (r && !w->err)
			w->err = r;
		stream_pool_put(&w->pool[it.framed ? 0 : 1], it.b);
		w->busy = false;
		pthread_cond_broadcast(&w->cond);
	}
	w->cpu_ns = stream_thread_cpu_ns(pthread_self());
	w->exited = true;
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int stream_start_writer(struct stream *s, size_t payload_cap)
{
	struct stream_writer *w;
	int r;

	if (s->w)
		return KM_ERR_STATE;
	if ((r = stream_flush(s)) != 0)
		return r;
	if (!(w = calloc(1, sizeof(*w))))
		return -ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	stream_pool_init(&w->pool[0], STREAM_OUT_FLUSH + REC_HDR_SIZE + REC_MAX_PAYLOAD);
	stream_pool_init(&w->pool[1], payload_cap);
	s->w = w;
	if ((r = pthread_create(&w->thread, NULL, stream_async_thread, s)) != 0) {
		s->w = NULL;
		stream_pool_destroy(&w->pool[0]);
		stream_pool_destroy(&w->pool[1]);
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return -r;
	}
	return 0;
}

int stream_async_enqueue(struct stream *s, struct buf *b, uint32_t type, bool framed)
{
	struct stream_writer *w = s->w;
	int r;

	pthread_mutex_lock(&w->lock);
	while (w->n == STREAM_QUEUE && !w->err)
		pthread_cond_wait(&w->cond, &w->lock);
	if ((r = w->err) != 0) {
		stream_pool_put(&w->pool[framed ? 0 : 1], b);
	} else {
		w->q[(w->head + w->n) % STREAM_QUEUE] = (struct stream_item){
			.b = b, .type = type, .framed = framed };
		w->n++;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

int stream_async_flush(struct stream *s)
{
	struct stream_writer *w = s->w;
	struct buf *b = s->out;
	int r = 0;

	if (buf_len(b) > 0) {
		if (!(s->out = stream_async_buf(s, true))) {
			s->out = b;
			return -ENOMEM;
		}
		s->bytes_out += buf_len(b);
		r = stream_async_enqueue(s, b, 0, true);
	}
	pthread_mutex_lock(&w->lock);
	while ((w->n > 0 || w->busy) && !w->err)
		pthread_cond_wait(&w->cond, &w->lock);
	if (!r)
		r = w->err;
	pthread_mutex_unlock(&w->lock);
	return r;
}

void stream_async_stop(struct stream *s)
{
	struct stream_writer *w = s->w;
	unsigned int k;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	/* Anything still queued at teardown is dropped, not written. */
	if (!w->err)
		w->err = KM_ERR_CANCELED;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	s->stopped_cpu_ns += w->cpu_ns;
	for (k = 0; k < 2; k++)
		stream_pool_destroy(&w->pool[k]);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
	s->w = NULL;
}
