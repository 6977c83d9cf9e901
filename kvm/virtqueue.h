/*
 * Split virtqueues (virtio 1.x s.2.7) as a device sees them: the driver's
 * descriptor table and available ring, read from guest memory, and the
 * used ring the device writes back. The rings live in guest memory, which
 * the guest may change at any time, so everything read from them is
 * bounded before it is used: every index against the queue size, every
 * buffer address and length against guest RAM (memory__hva), and a chain
 * may hold at most as many descriptors as the queue has (a loop in the
 * "next" links ends there instead of running forever).
 *
 * The host is x86 (little-endian, as virtio 1.x's fields are), so ring
 * fields are read as they lie. Not thread-safe: the owner serializes.
 */
#ifndef KM_VIRTQUEUE_H
#define KM_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>

struct kvm_memory;

#define VIRTQ_NUM_MAX		256	/* the largest queue a device here offers */

#define VIRTQ_DESC_F_NEXT	1
#define VIRTQ_DESC_F_WRITE	2
#define VIRTQ_DESC_F_INDIRECT	4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

/* A queue's guest-visible state: what the driver set through the transport, and the device's indexes. */
struct virtqueue_state {
	uint32_t num;		/* queue size the driver chose: a power of two <= num_max */
	uint32_t ready;		/* QueueReady */
	uint64_t desc, avail, used;	/* guest physical addresses of the three areas */
	uint16_t last_avail;	/* the next available-ring entry the device will take */
	uint16_t used_idx;	/* the device's copy of the used ring's idx */
};

struct virtqueue {
	struct virtqueue_state st;
	uint32_t num_max;
	/* Host addresses of the areas, while ready (virtqueue__map). */
	uint8_t *desc_hva, *avail_hva, *used_hva;
};

/* One buffer of a chain, in guest memory (hva) and as the guest named it (gpa). */
struct virtq_seg {
	uint8_t *hva;
	uint64_t gpa;
	uint32_t len;
	bool write;		/* device-writable */
};

/* A descriptor chain taken from the available ring. */
struct virtq_chain {
	uint16_t head;		/* to give back in the used ring */
	unsigned int n;		/* segments */
	uint64_t rlen, wlen;	/* bytes readable, writable by the device */
	struct virtq_seg seg[VIRTQ_NUM_MAX];
};

/*
 * Checks the queue's size and areas (size a power of two, 1..num_max;
 * areas aligned as the spec requires and inside guest RAM) and keeps
 * their host addresses. 0 or KM_ERR_INVALID (nothing kept).
 */
int virtqueue__map(struct virtqueue *vq, const struct kvm_memory *mem);
/* Forgets the areas and zeroes the state (device reset). num_max stays. */
void virtqueue__reset(struct virtqueue *vq);

/*
 * Takes the next available chain into *c. 0 and a chain; KM_ERR_END if the
 * driver has made none available; KM_ERR_CORRUPT if the rings are broken
 * (an index out of range, more chains available than the queue holds, a
 * buffer outside guest RAM, a readable buffer after a writable one, an
 * indirect descriptor, which is not offered, or a chain longer than the
 * queue). On KM_ERR_CORRUPT nothing is taken: the device should stop
 * using the queue (DEVICE_NEEDS_RESET).
 */
int virtqueue__pop(struct virtqueue *vq, const struct kvm_memory *mem, struct virtq_chain *c);

/*
 * Gives chain head back with len bytes written into it: the used-ring
 * entry, then (after a release fence) the used index. Both are device
 * writes to guest memory, marked dirty for migration (dirty__mark).
 */
void virtqueue__push(struct virtqueue *vq, struct kvm_memory *mem, uint16_t head, uint32_t len);

/* Whether the driver wants an interrupt for used buffers (no VIRTQ_AVAIL_F_NO_INTERRUPT). */
bool virtqueue__wants_irq(const struct virtqueue *vq);

/* Copies up to len bytes at offset off of the chain's readable part into dst; the count copied. */
uint64_t virtq_chain__read(const struct virtq_chain *c, uint64_t off, void *dst, uint64_t len);
/*
 * Copies len bytes into the chain's writable part at offset off (counted
 * from its first writable byte), marking what it wrote dirty. The count
 * copied (less if the chain is shorter).
 */
uint64_t virtq_chain__write(const struct virtq_chain *c, struct kvm_memory *mem, uint64_t off,
			    const void *src, uint64_t len);

#endif
