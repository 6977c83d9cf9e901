/*
 * The disk for checkpoints (virtio-blk.h): which blocks the guest wrote,
 * and the image's content read and written a block at a time.
 *
 * Timeline of a write against a checkpoint's copy, which is why a block
 * is marked after its pwrite and not before: the checkpointer reads (and
 * clears) the bits, then copies the blocks they name. Were a write marked
 * first, the checkpointer could read the bit and copy the block before
 * the data landed, and the new data would be in no checkpoint. Marked
 * after, a write that lands after the copy leaves its bit set for the
 * next round or the pause, where the VM is stopped and no request is in
 * flight (requests are done on the vCPU thread, virtio-blk.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "kvm/virtio-blk-int.h"

uint64_t virtio_blk__nr_blocks(const struct virtio_blk *b)
{
	return (b->size + VIRTIO_BLK_BLOCK - 1) / VIRTIO_BLK_BLOCK;
}

int virtio_blk__track(struct virtio_blk *b)
{
	int id, r = -EBUSY;

	pthread_mutex_lock(&b->track_lock);
	for (id = 0; id < VIRTIO_BLK_TRACKERS; id++)
		if (!b->tracking[id])
			break;
	if (id == VIRTIO_BLK_TRACKERS)
		goto out;
	if ((r = bitmap_init(&b->track[id], virtio_blk__nr_blocks(b))) != 0)
		goto out;
	bitmap_fill(&b->track[id]);
	b->tracking[id] = true;
	atomic_store(&b->any_tracker, true);
	r = id;
out:
	pthread_mutex_unlock(&b->track_lock);
	return r;
}

void virtio_blk__untrack(struct virtio_blk *b, int id)
{
	bool any = false;
	int i;

	if (id < 0 || id >= VIRTIO_BLK_TRACKERS)
		return;
	pthread_mutex_lock(&b->track_lock);
	b->tracking[id] = false;
	bitmap_free(&b->track[id]);
	for (i = 0; i < VIRTIO_BLK_TRACKERS; i++)
		any |= b->tracking[i];
	atomic_store(&b->any_tracker, any);
	pthread_mutex_unlock(&b->track_lock);
}

void virtio_blk__track_free(struct virtio_blk *b)
{
	int i;

	for (i = 0; i < VIRTIO_BLK_TRACKERS; i++)
		if (b->tracking[i])
			virtio_blk__untrack(b, i);
	pthread_mutex_destroy(&b->track_lock);
}

void virtio_blk__mark(struct virtio_blk *b, uint64_t pos, uint64_t len)
{
	uint64_t first, last;
	int i;

	/*
	 * A tracker started after this load misses nothing: it starts with
	 * every block set.
	 */
	if (len == 0 || !atomic_load(&b->any_tracker))
		return;
	first = pos / VIRTIO_BLK_BLOCK;
	last = (pos + len - 1) / VIRTIO_BLK_BLOCK;
	pthread_mutex_lock(&b->track_lock);
	for (i = 0; i < VIRTIO_BLK_TRACKERS; i++)
		if (b->tracking[i])
			bitmap_set_range(&b->track[i], first, last - first + 1);
	pthread_mutex_unlock(&b->track_lock);
}

void virtio_blk__dirty_read(struct virtio_blk *b, int id, struct bitmap *out)
{
	if (id < 0 || id >= VIRTIO_BLK_TRACKERS)
		return;
	pthread_mutex_lock(&b->track_lock);
	if (b->tracking[id]) {
		bitmap_or_at(out, 0, b->track[id].words, b->track[id].nbits);
		bitmap_clear_all(&b->track[id]);
	}
	pthread_mutex_unlock(&b->track_lock);
}

int virtio_blk__read_blocks(struct virtio_blk *b, uint64_t first, uint64_t n, uint8_t *dst)
{
	uint64_t pos = first * VIRTIO_BLK_BLOCK, want = n * VIRTIO_BLK_BLOCK, at;
	int r;

	if (first > virtio_blk__nr_blocks(b) || n > virtio_blk__nr_blocks(b) - first)
		return KM_ERR_INVALID;
	memset(dst, 0, want);
	if (want > b->size - pos)
		want = b->size - pos;
	if ((r = virtio_blk__io(b, true, dst, want, pos, &at)) != 0)
		log_error("disk %s: read at %llu: %s", b->path, (unsigned long long)at,
			  km_strerror(r));
	return r;
}

int virtio_blk__write_block(struct virtio_blk *b, uint64_t off, const uint8_t *data)
{
	static const uint8_t zero[VIRTIO_BLK_BLOCK];
	uint64_t len, at;
	int r;

	if (b->ro || off % VIRTIO_BLK_BLOCK || off >= b->size)
		return KM_ERR_INVALID;
	len = b->size - off < VIRTIO_BLK_BLOCK ? b->size - off : VIRTIO_BLK_BLOCK;
	if (!data) {
		if (fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			      (off_t)len) == 0)
			return 0;
		data = zero;	/* a file system without holes: write the zeros */
	}
	if ((r = virtio_blk__io(b, false, (void *)data, len, off, &at)) != 0)
		log_error("disk %s: write at %llu: %s", b->path, (unsigned long long)at,
			  km_strerror(r));
	return r;
}
