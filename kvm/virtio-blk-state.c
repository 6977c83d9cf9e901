/*
 * The virtio-blk disk's state blob for migration (virtio_blk__save,
 * virtio_blk__load; see virtio-blk.h). A field list of u64 values, so
 * that each value says what it is and a reader bounds it before use:
 *
 *   VB_MAGIC "KMVBLK" (bytes), VB_VERSION 1, VB_SIZE, VB_FEATURES (offered),
 *   VB_STATUS, VB_DEV_FEAT_SEL, VB_DRV_FEAT_SEL, VB_DRV_FEATURES,
 *   VB_QUEUE_SEL, VB_INT_STATUS, VB_CONFIG_GEN, VB_IRQ_LEVEL, VB_NR_QUEUES,
 *   then VB_QUEUE (one per queue, in order) holding a nested field list:
 *   Q_NUM, Q_READY, Q_DESC, Q_AVAIL, Q_USED, Q_LAST_AVAIL, Q_USED_IDX.
 *
 * Every field must be there once; an unknown one is refused (state this
 * reader could not restore), as is anything out of range.
 */
#include <errno.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "record.h"
#include "kvm/kvm.h"
#include "kvm/virtio-blk-int.h"

#define VB_MAGIC_TEXT	"KMVBLK"
#define VB_VERSION_NOW	1

enum {
	VB_MAGIC = 1, VB_VERSION, VB_SIZE, VB_FEATURES, VB_STATUS, VB_DEV_FEAT_SEL,
	VB_DRV_FEAT_SEL, VB_DRV_FEATURES, VB_QUEUE_SEL, VB_INT_STATUS, VB_CONFIG_GEN,
	VB_IRQ_LEVEL, VB_NR_QUEUES, VB_QUEUE, VB_NR_TAGS
};
enum { Q_NUM = 1, Q_READY, Q_DESC, Q_AVAIL, Q_USED, Q_LAST_AVAIL, Q_USED_IDX, Q_NR_TAGS };

static int state__put_queue(struct buf *out, const struct virtqueue_state *q)
{
	struct buf *f = buf_new(256);
	int r;

	if (!f)
		return -ENOMEM;
	if ((r = rec_put_field_u64(f, Q_NUM, q->num)) ||
	    (r = rec_put_field_u64(f, Q_READY, q->ready)) ||
	    (r = rec_put_field_u64(f, Q_DESC, q->desc)) ||
	    (r = rec_put_field_u64(f, Q_AVAIL, q->avail)) ||
	    (r = rec_put_field_u64(f, Q_USED, q->used)) ||
	    (r = rec_put_field_u64(f, Q_LAST_AVAIL, q->last_avail)) ||
	    (r = rec_put_field_u64(f, Q_USED_IDX, q->used_idx)))
		goto out;
	r = rec_put_field(out, VB_QUEUE, buf_ptr(f), (uint32_t)buf_len(f));
out:
	buf_free(f);
	return r;
}

int virtio_blk__save(const struct virtio_blk *b, struct buf *out)
{
	const struct virtio_mmio_state *s = &b->mmio.st;
	unsigned int i;
	int r;

	if ((r = rec_put_field(out, VB_MAGIC, VB_MAGIC_TEXT, sizeof(VB_MAGIC_TEXT) - 1)) ||
	    (r = rec_put_field_u64(out, VB_VERSION, VB_VERSION_NOW)) ||
	    (r = rec_put_field_u64(out, VB_SIZE, b->size)) ||
	    (r = rec_put_field_u64(out, VB_FEATURES, b->mmio.features)) ||
	    (r = rec_put_field_u64(out, VB_STATUS, s->status)) ||
	    (r = rec_put_field_u64(out, VB_DEV_FEAT_SEL, s->dev_feat_sel)) ||
	    (r = rec_put_field_u64(out, VB_DRV_FEAT_SEL, s->drv_feat_sel)) ||
	    (r = rec_put_field_u64(out, VB_DRV_FEATURES, s->drv_features)) ||
	    (r = rec_put_field_u64(out, VB_QUEUE_SEL, s->queue_sel)) ||
	    (r = rec_put_field_u64(out, VB_INT_STATUS, s->int_status)) ||
	    (r = rec_put_field_u64(out, VB_CONFIG_GEN, s->config_gen)) ||
	    (r = rec_put_field_u64(out, VB_IRQ_LEVEL, s->irq_level)) ||
	    (r = rec_put_field_u64(out, VB_NR_QUEUES, b->mmio.nr_queues)))
		return r;
	for (i = 0; i < b->mmio.nr_queues; i++)
		if ((r = state__put_queue(out, &b->mmio.vqs[i].st)) != 0)
			return r;
	return 0;
}

/*
 * The u64 fields of a field list by tag (1..nr-1), each exactly once,
 * and up to max_queues VB_QUEUE fields in order (queues may be NULL when
 * the list has none). 0 or KM_ERR_CORRUPT.
 */
static int state__fields(const uint8_t *p, uint32_t len, unsigned int nr, uint64_t *v,
			 const uint8_t **queues, uint32_t *qlen, unsigned int max_queues,
			 unsigned int *nr_queues)
{
	struct buf *b = buf_view(p, len);
	uint32_t seen = 0, tag, flen;
	const uint8_t *data;
	int r;

	if (!b)
		return -ENOMEM;
	*nr_queues = 0;
	while ((r = rec_get_field(b, &tag, &data, &flen)) == 0) {
		if (queues && tag == VB_QUEUE) {
			if (*nr_queues == max_queues)
				goto corrupt;
			queues[*nr_queues] = data;
			qlen[(*nr_queues)++] = flen;
			continue;
		}
		if (tag == 0 || tag >= nr || (seen & (1U << tag)))
			goto corrupt;
		seen |= 1U << tag;
		if (queues && tag == VB_MAGIC) {
			if (flen != sizeof(VB_MAGIC_TEXT) - 1 || memcmp(data, VB_MAGIC_TEXT, flen))
				goto corrupt;
			continue;
		}
		if (rec_field_u64(data, flen, &v[tag]) != 0)
			goto corrupt;
	}
	buf_free(b);
	if (r != KM_ERR_END || seen != ((1U << nr) - 2))
		return KM_ERR_CORRUPT;
	return 0;
corrupt:
	buf_free(b);
	return KM_ERR_CORRUPT;
}

/* One queue's nested field list into *q, checked against the VM's memory. */
static int state__queue(const struct virtio_blk *b, const uint8_t *p, uint32_t len,
			struct virtqueue *q)
{
	uint64_t v[Q_NR_TAGS];
	unsigned int none;

	if (state__fields(p, len, Q_NR_TAGS, v, NULL, NULL, 0, &none) != 0)
		return KM_ERR_CORRUPT;
	if (v[Q_READY] > 1 || v[Q_NUM] > UINT32_MAX || v[Q_LAST_AVAIL] > UINT16_MAX ||
	    v[Q_USED_IDX] > UINT16_MAX)
		return KM_ERR_CORRUPT;
	q->st = (struct virtqueue_state){
		.num = (uint32_t)v[Q_NUM], .ready = (uint32_t)v[Q_READY], .desc = v[Q_DESC],
		.avail = v[Q_AVAIL], .used = v[Q_USED], .last_avail = (uint16_t)v[Q_LAST_AVAIL],
		.used_idx = (uint16_t)v[Q_USED_IDX],
	};
	q->desc_hva = q->avail_hva = q->used_hva = NULL;
	/*
	 * What the driver wrote to a queue it has not made ready may be
	 * anything (the device checks it when the queue is made ready, as
	 * virtqueue__map does here for a ready one): refusing it would let a
	 * guest make its own migration fail.
	 */
	if (q->st.ready && virtqueue__map(q, &b->kvm->mem) != 0)
		return KM_ERR_CORRUPT;
	return 0;
}

int virtio_blk__load(struct virtio_blk *b, const uint8_t *p, uint32_t len)
{
	const uint8_t *queues[VIRTIO_MMIO_MAX_QUEUES];
	struct virtqueue vqs[VIRTIO_MMIO_MAX_QUEUES];
	uint32_t qlen[VIRTIO_MMIO_MAX_QUEUES];
	uint64_t v[VB_NR_TAGS] = { 0 };
	struct virtio_mmio *m = &b->mmio;
	unsigned int i, nq;
	int r;

	if ((r = state__fields(p, len, VB_NR_TAGS - 1, v, queues, qlen, VIRTIO_MMIO_MAX_QUEUES,
			       &nq)) != 0) {
		log_error("disk %s: device state: malformed, or a field missing or unknown", b->path);
		return r;
	}
	if (v[VB_VERSION] != VB_VERSION_NOW) {
		log_error("disk %s: device state version %llu, not %d", b->path,
			  (unsigned long long)v[VB_VERSION], VB_VERSION_NOW);
		return KM_ERR_VERSION;
	}
	if (v[VB_SIZE] != b->size || v[VB_FEATURES] != m->features) {
		log_error("disk %s: the device state is of another disk (%llu bytes, features "
			  "%#llx; this one %llu, %#llx)", b->path, (unsigned long long)v[VB_SIZE],
			  (unsigned long long)v[VB_FEATURES], (unsigned long long)b->size,
			  (unsigned long long)m->features);
		return KM_ERR_INVALID;
	}
	if (v[VB_NR_QUEUES] != m->nr_queues || nq != m->nr_queues ||
	    v[VB_STATUS] & ~(uint64_t)VIRTIO_STATUS_ALL || v[VB_DEV_FEAT_SEL] > UINT32_MAX ||
	    v[VB_DRV_FEAT_SEL] > UINT32_MAX || v[VB_QUEUE_SEL] > UINT32_MAX ||
	    v[VB_CONFIG_GEN] > UINT32_MAX ||
	    /* Acked features are the driver's wish until FEATURES_OK, which holds only for offered ones. */
	    ((v[VB_STATUS] & VIRTIO_STATUS_FEATURES_OK) &&
	     ((v[VB_DRV_FEATURES] & ~m->features) ||
	      !(v[VB_DRV_FEATURES] & (1ULL << VIRTIO_F_VERSION_1)))) ||
	    v[VB_INT_STATUS] & ~(uint64_t)(VIRTIO_INT_USED | VIRTIO_INT_CONFIG) ||
	    v[VB_IRQ_LEVEL] != (v[VB_INT_STATUS] != 0))
		goto corrupt;
	for (i = 0; i < nq; i++) {
		vqs[i].num_max = m->vqs[i].num_max;
		if (state__queue(b, queues[i], qlen[i], &vqs[i]) != 0)
			goto corrupt;
	}
	/* All checked: now it is b's state. */
	pthread_mutex_lock(&m->lock);
	m->st = (struct virtio_mmio_state){
		.status = (uint32_t)v[VB_STATUS], .dev_feat_sel = (uint32_t)v[VB_DEV_FEAT_SEL],
		.drv_feat_sel = (uint32_t)v[VB_DRV_FEAT_SEL], .drv_features = v[VB_DRV_FEATURES],
		.queue_sel = (uint32_t)v[VB_QUEUE_SEL], .int_status = (uint32_t)v[VB_INT_STATUS],
		.config_gen = (uint32_t)v[VB_CONFIG_GEN], .irq_level = (uint32_t)v[VB_IRQ_LEVEL],
	};
	for (i = 0; i < nq; i++)
		m->vqs[i] = vqs[i];
	r = virtio_mmio__sync_irq(m);
	pthread_mutex_unlock(&m->lock);
	return r;
corrupt:
	log_error("disk %s: device state: a value out of range", b->path);
	return KM_ERR_CORRUPT;
}
