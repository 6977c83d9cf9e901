/*
 * The virtio-mmio transport, version 2 (virtio 1.x s.4.2.2, "modern"):
 * one device's 0x200-byte register window in guest physical address
 * space, its feature negotiation, queues, interrupt and status. The
 * device model above it (virtio-blk.c) supplies the configuration space
 * and the work done when the driver notifies a queue.
 *
 * The interrupt is level-triggered on one IOAPIC pin (a GSI): the line is
 * high exactly while InterruptStatus is not zero, raised with KVM_IRQ_LINE
 * when the device sets a bit and lowered when the driver's InterruptACK
 * clears the last one (or on reset). A level line needs no "resample":
 * if the guest EOIs with the line still high, the IOAPIC delivers again.
 *
 * Every guest access arrives on a vCPU thread (a KVM_EXIT_MMIO) and is
 * handled under the transport's lock, queue notifications included: the
 * device does its work there, synchronously, so when kvm__pause returns
 * (no vCPU in KVM_RUN, none in an exit handler) no request is in flight.
 */
#ifndef KM_VIRTIO_MMIO_H
#define KM_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kvm/virtqueue.h"

struct kvm;

#define VIRTIO_MMIO_SIZE	0x200
#define VIRTIO_MMIO_CONFIG	0x100	/* the device's configuration space starts here */
#define VIRTIO_MMIO_MAX_QUEUES	2

/* Device status bits (virtio 1.x s.2.1). */
#define VIRTIO_STATUS_ACK		1
#define VIRTIO_STATUS_DRIVER		2
#define VIRTIO_STATUS_DRIVER_OK		4
#define VIRTIO_STATUS_FEATURES_OK	8
#define VIRTIO_STATUS_NEEDS_RESET	0x40
#define VIRTIO_STATUS_FAILED		0x80
#define VIRTIO_STATUS_ALL		0xcf

/* InterruptStatus bits. */
#define VIRTIO_INT_USED		1
#define VIRTIO_INT_CONFIG	2

#define VIRTIO_F_VERSION_1	32

/* The transport's guest-visible state besides the queues. */
struct virtio_mmio_state {
	uint32_t status;
	uint32_t dev_feat_sel;		/* DeviceFeaturesSel */
	uint32_t drv_feat_sel;		/* DriverFeaturesSel */
	uint64_t drv_features;		/* what the driver acked */
	uint32_t queue_sel;
	uint32_t int_status;
	uint32_t config_gen;
	uint32_t irq_level;		/* the level last set on the line */
};

struct virtio_mmio_ops {
	/* Reads len (1, 2 or 4) bytes at offset off of the configuration space. */
	void (*config_read)(void *dev, uint32_t off, uint8_t *data, uint32_t len);
	/* The driver notified queue q (ready, DRIVER_OK): do the work. Under the lock. */
	void (*notify)(void *dev, unsigned int q);
};

struct virtio_mmio {
	struct kvm *kvm;
	uint64_t base;			/* guest physical address of the window */
	uint32_t gsi;
	uint32_t device_id;		/* 2: block */
	uint64_t features;		/* offered */
	unsigned int nr_queues;
	const struct virtio_mmio_ops *ops;
	void *dev;
	pthread_mutex_t lock;
	struct virtio_mmio_state st;
	struct virtqueue vqs[VIRTIO_MMIO_MAX_QUEUES];
};

/*
 * Sets up m with nr_queues queues of at most num_max entries each (a
 * power of two <= VIRTQ_NUM_MAX). m->kvm is the device's to set (its
 * attach) before any guest access. 0 or KM_ERR_INVALID.
 */
int virtio_mmio__init(struct virtio_mmio *m, uint64_t base, uint32_t gsi, uint32_t device_id,
		      uint64_t features, unsigned int nr_queues, uint32_t num_max,
		      const struct virtio_mmio_ops *ops, void *dev);
void virtio_mmio__destroy(struct virtio_mmio *m);

static inline bool virtio_mmio__owns(const struct virtio_mmio *m, uint64_t gpa)
{
	return gpa >= m->base && gpa - m->base < VIRTIO_MMIO_SIZE;
}

/* A guest access of len bytes at gpa (virtio_mmio__owns): a read fills data, a write reads it. */
void virtio_mmio__access(struct virtio_mmio *m, uint64_t gpa, bool is_write, uint8_t *data,
			 uint32_t len);

/* From ops->notify: buffers were given back on vq; interrupts the driver if it wants. */
void virtio_mmio__used(struct virtio_mmio *m, const struct virtqueue *vq);
/* From ops->notify: the driver broke a queue; DEVICE_NEEDS_RESET and a config interrupt. */
void virtio_mmio__needs_reset(struct virtio_mmio *m);

/*
 * Sets the IRQ line to st.irq_level as it is now (after a load): 0 or the
 * error of KVM_IRQ_LINE. Without a VM (kvm->vm_fd < 0: tests), nothing.
 */
int virtio_mmio__sync_irq(struct virtio_mmio *m);

#endif
