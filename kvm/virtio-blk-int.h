/* The virtio-blk disk's insides, shared by virtio-blk.c and virtio-blk-state.c only. */
#ifndef KM_VIRTIO_BLK_INT_H
#define KM_VIRTIO_BLK_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bitmap.h"
#include "kvm/virtio-blk.h"
#include "kvm/virtio-mmio.h"
#include "kvm/virtqueue.h"

#define VIRTIO_ID_BLOCK		2
#define VIRTIO_BLK_F_SEG_MAX	2
#define VIRTIO_BLK_F_RO		5
#define VIRTIO_BLK_F_FLUSH	9

struct virtio_blk {
	struct kvm *kvm;
	char *path;
	int fd;				/* the image, or while a restore stages, the staged file */
	int image_fd;			/* while a restore stages: the image (and its lock) */
	char *stage_path, *stage_target;	/* the staged file; the image's real path */
	bool ro;
	bool locked;
	uint64_t size;			/* bytes, a multiple of 512 */
	char id[VIRTIO_BLK_ID_BYTES + 1];
	struct virtio_mmio mmio;
	struct virtq_chain chain;	/* the request being done (under mmio.lock) */
	/* Dirty-block trackers of checkpoints (virtio-blk-track.c), under track_lock. */
	pthread_mutex_t track_lock;
	struct bitmap track[VIRTIO_BLK_TRACKERS];
	bool tracking[VIRTIO_BLK_TRACKERS];
	atomic_bool any_tracker;	/* a write need not take the lock when false */
	struct {
		atomic_uint_fast64_t reads, writes, flushes, get_ids, unsupported, errors,
				     bytes_read, bytes_written;
	} stats;
};

/* The features this disk offers (besides VERSION_1, which the transport adds). */
static inline uint64_t virtio_blk__features(const struct virtio_blk *b)
{
	return (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_FLUSH) |
	       (b->ro ? 1ULL << VIRTIO_BLK_F_RO : 0);
}

/* Marks the blocks of bytes [pos, pos + len) written, for every tracker (after the write). */
void virtio_blk__mark(struct virtio_blk *b, uint64_t pos, uint64_t len);
/*
 * All len bytes between buf and the image at pos (in: read into buf),
 * across short transfers and EINTR: 0, or the error (-EIO at an end of
 * file) with the offset it happened at in *at.
 */
int virtio_blk__io(struct virtio_blk *b, bool in, void *buf, uint64_t len, uint64_t pos,
		   uint64_t *at);
/* Frees the trackers (virtio_blk__destroy). */
void virtio_blk__track_free(struct virtio_blk *b);

#endif
