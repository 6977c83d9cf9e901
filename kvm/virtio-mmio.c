/* The virtio-mmio transport, version 2. See virtio-mmio.h. */
#include <string.h>
#include <sys/ioctl.h>

#include "err.h"
#include "log.h"
#include "kvm/kvm.h"
#include "kvm/virtio-mmio.h"

/* Register offsets (virtio 1.x s.4.2.2, Linux's <linux/virtio_mmio.h>). */
#define REG_MAGIC		0x000
#define REG_VERSION		0x004
#define REG_DEVICE_ID		0x008
#define REG_VENDOR_ID		0x00c
#define REG_DEV_FEATURES	0x010
#define REG_DEV_FEATURES_SEL	0x014
#define REG_DRV_FEATURES	0x020
#define REG_DRV_FEATURES_SEL	0x024
#define REG_QUEUE_SEL		0x030
#define REG_QUEUE_NUM_MAX	0x034
#define REG_QUEUE_NUM		0x038
#define REG_QUEUE_READY		0x044
#define REG_QUEUE_NOTIFY	0x050
#define REG_INT_STATUS		0x060
#define REG_INT_ACK		0x064
#define REG_STATUS		0x070
#define REG_QUEUE_DESC_LO	0x080
#define REG_QUEUE_DESC_HI	0x084
#define REG_QUEUE_AVAIL_LO	0x090
#define REG_QUEUE_AVAIL_HI	0x094
#define REG_QUEUE_USED_LO	0x0a0
#define REG_QUEUE_USED_HI	0x0a4
#define REG_SHM_LEN_LO		0x0b0
#define REG_SHM_LEN_HI		0x0b4
#define REG_CONFIG_GEN		0x0fc

#define MMIO_MAGIC		0x74726976	/* "virt" */
#define MMIO_VERSION		2
#define MMIO_VENDOR		0x47494d4b	/* "KMIG" */

int virtio_mmio__init(struct virtio_mmio *m, uint64_t base, uint32_t gsi, uint32_t device_id,
		      uint64_t features, unsigned int nr_queues, uint32_t num_max,
		      const struct virtio_mmio_ops *ops, void *dev)
{
	unsigned int i;

	if (!nr_queues || nr_queues > VIRTIO_MMIO_MAX_QUEUES || !num_max ||
	    num_max > VIRTQ_NUM_MAX || (num_max & (num_max - 1)))
		return KM_ERR_INVALID;
	memset(m, 0, sizeof(*m));
	m->base = base;
	m->gsi = gsi;
	m->device_id = device_id;
	m->features = features | (1ULL << VIRTIO_F_VERSION_1);
	m->nr_queues = nr_queues;
	m->ops = ops;
	m->dev = dev;
	for (i = 0; i < nr_queues; i++)
		m->vqs[i].num_max = num_max;
	pthread_mutex_init(&m->lock, NULL);
	return 0;
}

void virtio_mmio__destroy(struct virtio_mmio *m)
{
	pthread_mutex_destroy(&m->lock);
}

int virtio_mmio__sync_irq(struct virtio_mmio *m)
{
	struct kvm_irq_level irq = { .irq = m->gsi, .level = m->st.irq_level };

	if (!m->kvm || m->kvm->vm_fd < 0)
		return 0;
	if (ioctl(m->kvm->vm_fd, KVM_IRQ_LINE, &irq) < 0) {
		int r = km_errno();

		log_warn("virtio-mmio at %#llx: KVM_IRQ_LINE %u: %s", (unsigned long long)m->base,
			 m->gsi, km_strerror(r));
		return r;
	}
	return 0;
}

/* The line follows InterruptStatus. Under the lock. */
static void virtio_mmio__update_irq(struct virtio_mmio *m)
{
	uint32_t level = m->st.int_status != 0;

	if (level == m->st.irq_level)
		return;
	m->st.irq_level = level;
	(void)virtio_mmio__sync_irq(m);
}

void virtio_mmio__used(struct virtio_mmio *m, const struct virtqueue *vq)
{
	if (!virtqueue__wants_irq(vq))
		return;
	m->st.int_status |= VIRTIO_INT_USED;
	virtio_mmio__update_irq(m);
}

void virtio_mmio__needs_reset(struct virtio_mmio *m)
{
	if (m->st.status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	log_warn("virtio-mmio at %#llx: the driver broke a queue; the device needs a reset",
		 (unsigned long long)m->base);
	m->st.status |= VIRTIO_STATUS_NEEDS_RESET;
	if (m->st.status & VIRTIO_STATUS_DRIVER_OK) {
		m->st.int_status |= VIRTIO_INT_CONFIG;
		virtio_mmio__update_irq(m);
	}
}

/* Writing 0 to Status: everything back to its initial state, the line low. */
static void virtio_mmio__reset(struct virtio_mmio *m)
{
	unsigned int i;
	uint32_t gen = m->st.config_gen;

	for (i = 0; i < m->nr_queues; i++)
		virtqueue__reset(&m->vqs[i]);
	memset(&m->st, 0, sizeof(m->st));
	m->st.config_gen = gen;
	m->st.irq_level = 1;	/* forces the update below to lower the line */
	virtio_mmio__update_irq(m);
}

/* The selected queue, or NULL if QueueSel names none. */
static struct virtqueue *virtio_mmio__vq(struct virtio_mmio *m)
{
	return m->st.queue_sel < m->nr_queues ? &m->vqs[m->st.queue_sel] : NULL;
}

static uint32_t virtio_mmio__read_reg(struct virtio_mmio *m, uint32_t off)
{
	struct virtqueue *vq = virtio_mmio__vq(m);

	switch (off) {
	case REG_MAGIC:
		return MMIO_MAGIC;
	case REG_VERSION:
		return MMIO_VERSION;
	case REG_DEVICE_ID:
		return m->device_id;
	case REG_VENDOR_ID:
		return MMIO_VENDOR;
	case REG_DEV_FEATURES:
		return m->st.dev_feat_sel < 2 ? (uint32_t)(m->features >> (32 * m->st.dev_feat_sel)) : 0;
	case REG_QUEUE_NUM_MAX:
		return vq ? vq->num_max : 0;
	case REG_QUEUE_READY:
		return vq ? vq->st.ready : 0;
	case REG_INT_STATUS:
		return m->st.int_status;
	case REG_STATUS:
		return m->st.status;
	case REG_SHM_LEN_LO:
	case REG_SHM_LEN_HI:
		return 0xffffffff;	/* no shared memory region */
	case REG_CONFIG_GEN:
		return m->st.config_gen;
	default:
		return 0;
	}
}

/* A queue's address half: only while the queue is not ready (s.4.2.3.2). */
static void virtio_mmio__set_addr(struct virtqueue *vq, uint64_t *a, bool high, uint32_t v)
{
	if (!vq || vq->st.ready)
		return;
	if (high)
		*a = (*a & 0xffffffffULL) | ((uint64_t)v << 32);
	else
		*a = (*a & ~0xffffffffULL) | v;
}

static void virtio_mmio__set_status(struct virtio_mmio *m, uint32_t v)
{
	if (v == 0) {
		virtio_mmio__reset(m);
		return;
	}
	v &= VIRTIO_STATUS_ALL & ~VIRTIO_STATUS_NEEDS_RESET;
	/* FEATURES_OK holds only for a subset of what is offered, with VERSION_1 (modern only). */
	if ((v & VIRTIO_STATUS_FEATURES_OK) && !(m->st.status & VIRTIO_STATUS_FEATURES_OK) &&
	    ((m->st.drv_features & ~m->features) ||
	     !(m->st.drv_features & (1ULL << VIRTIO_F_VERSION_1)))) {
		log_warn("virtio-mmio at %#llx: driver features %#llx refused (offered %#llx)",
			 (unsigned long long)m->base, (unsigned long long)m->st.drv_features,
			 (unsigned long long)m->features);
		v &= ~VIRTIO_STATUS_FEATURES_OK;
	}
	m->st.status = v | (m->st.status & VIRTIO_STATUS_NEEDS_RESET);
}

static void virtio_mmio__write_reg(struct virtio_mmio *m, uint32_t off, uint32_t v)
{
	struct virtqueue *vq = virtio_mmio__vq(m);

	switch (off) {
	case REG_DEV_FEATURES_SEL:
		m->st.dev_feat_sel = v;
		return;
	case REG_DRV_FEATURES:
		if (m->st.drv_feat_sel < 2 && !(m->st.status & VIRTIO_STATUS_FEATURES_OK)) {
			unsigned int sh = 32 * m->st.drv_feat_sel;

			m->st.drv_features = (m->st.drv_features & ~(0xffffffffULL << sh)) |
					     ((uint64_t)v << sh);
		}
		return;
	case REG_DRV_FEATURES_SEL:
		m->st.drv_feat_sel = v;
		return;
	case REG_QUEUE_SEL:
		m->st.queue_sel = v;
		return;
	case REG_QUEUE_NUM:
		if (vq && !vq->st.ready)
			vq->st.num = v;
		return;
	case REG_QUEUE_READY:
		if (!vq)
			return;
		if (!v) {
			vq->st.ready = 0;
			vq->desc_hva = vq->avail_hva = vq->used_hva = NULL;
			return;
		}
		vq->st.ready = 1;
		if (virtqueue__map(vq, &m->kvm->mem) != 0) {
			vq->st.ready = 0;
			log_warn("virtio-mmio at %#llx: queue %u refused: size %u, areas %#llx %#llx "
				 "%#llx not aligned RAM", (unsigned long long)m->base,
				 m->st.queue_sel, vq->st.num, (unsigned long long)vq->st.desc,
				 (unsigned long long)vq->st.avail, (unsigned long long)vq->st.used);
		}
		return;
	case REG_QUEUE_NOTIFY:
		if (v < m->nr_queues && m->vqs[v].st.ready &&
		    (m->st.status & VIRTIO_STATUS_DRIVER_OK) &&
		    !(m->st.status & VIRTIO_STATUS_NEEDS_RESET))
			m->ops->notify(m->dev, v);
		return;
	case REG_INT_ACK:
		m->st.int_status &= ~v;
		virtio_mmio__update_irq(m);
		return;
	case REG_STATUS:
		virtio_mmio__set_status(m, v);
		return;
	case REG_QUEUE_DESC_LO:
	case REG_QUEUE_DESC_HI:
		virtio_mmio__set_addr(vq, vq ? &vq->st.desc : NULL, off == REG_QUEUE_DESC_HI, v);
		return;
	case REG_QUEUE_AVAIL_LO:
	case REG_QUEUE_AVAIL_HI:
		virtio_mmio__set_addr(vq, vq ? &vq->st.avail : NULL, off == REG_QUEUE_AVAIL_HI, v);
		return;
	case REG_QUEUE_USED_LO:
	case REG_QUEUE_USED_HI:
		virtio_mmio__set_addr(vq, vq ? &vq->st.used : NULL, off == REG_QUEUE_USED_HI, v);
		return;
	default:
		return;		/* read-only or unused: ignored */
	}
}

void virtio_mmio__access(struct virtio_mmio *m, uint64_t gpa, bool is_write, uint8_t *data,
			 uint32_t len)
{
	uint32_t off = (uint32_t)(gpa - m->base), v;

	pthread_mutex_lock(&m->lock);
	if (off >= VIRTIO_MMIO_CONFIG) {
		/* The configuration space: read in 1, 2 or 4 bytes; nothing here is writable. */
		if (!is_write) {
			memset(data, 0, len);
			if ((len == 1 || len == 2 || len == 4) && off + len <= VIRTIO_MMIO_SIZE)
				m->ops->config_read(m->dev, off - VIRTIO_MMIO_CONFIG, data, len);
		}
	} else if (len != 4 || off % 4) {
		/* Registers are 32 bits wide and aligned (s.4.2.2.2): anything else is ignored. */
		if (!is_write)
			memset(data, 0, len);
	} else if (is_write) {
		memcpy(&v, data, 4);
		virtio_mmio__write_reg(m, off, v);
	} else {
		v = virtio_mmio__read_reg(m, off);
		memcpy(data, &v, 4);
	}
	pthread_mutex_unlock(&m->lock);
}
