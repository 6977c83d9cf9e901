/* The virtio-blk disk's insides, shared by virtio-blk.c and virtio-blk-state.c only. */
#ifndef KM_VIRTIO_BLK_INT_H
#define KM_VIRTIO_BLK_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

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
	int fd;
	bool ro;
	bool locked;
	uint64_t size;			/* bytes, a multiple of 512 */
	char id[VIRTIO_BLK_ID_BYTES + 1];
	struct virtio_mmio mmio;
	struct virtq_chain chain;	/* the request being done (under mmio.lock) */
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

#endif
