/* Split virtqueues, the device's side. See virtqueue.h. */
#include <string.h>

#include "err.h"
#include "log.h"
#include "kvm/dirty.h"
#include "kvm/memory.h"
#include "kvm/virtqueue.h"

#define DESC_SIZE	16	/* u64 addr, u32 len, u16 flags, u16 next */
#define RING_HDR	4	/* u16 flags, u16 idx */
#define USED_ELEM	8	/* u32 id, u32 len */

static uint64_t virtqueue__avail_size(uint32_t num) { return RING_HDR + 2ULL * num + 2; }
static uint64_t virtqueue__used_size(uint32_t num) { return RING_HDR + (uint64_t)USED_ELEM * num + 2; }

int virtqueue__map(struct virtqueue *vq, const struct kvm_memory *mem)
{
	const struct virtqueue_state *s = &vq->st;
	uint8_t *d, *a, *u;

	if (s->num == 0 || s->num > vq->num_max || (s->num & (s->num - 1)))
		return KM_ERR_INVALID;
	/* Alignments of virtio 1.x s.2.7: 16 for descriptors, 2 and 4 for the rings. */
	if (s->desc % 16 || s->avail % 2 || s->used % 4)
		return KM_ERR_INVALID;
	d = memory__hva(mem, s->desc, (uint64_t)DESC_SIZE * s->num);
	a = memory__hva(mem, s->avail, virtqueue__avail_size(s->num));
	u = memory__hva(mem, s->used, virtqueue__used_size(s->num));
	if (!d || !a || !u)
		return KM_ERR_INVALID;
	vq->desc_hva = d;
	vq->avail_hva = a;
	vq->used_hva = u;
	return 0;
}

void virtqueue__reset(struct virtqueue *vq)
{
	memset(&vq->st, 0, sizeof(vq->st));
	vq->desc_hva = vq->avail_hva = vq->used_hva = NULL;
}

/* A u16 the driver may be writing meanwhile: one load, after the driver's release. */
static uint16_t virtqueue__load16(const uint8_t *p)
{
	return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE);
}

int virtqueue__pop(struct virtqueue *vq, const struct kvm_memory *mem, struct virtq_chain *c)
{
	uint32_t num = vq->st.num;
	uint16_t avail_idx, i, flags;
	unsigned int count = 0;
	uint64_t addr;
	uint32_t len;
	uint8_t *hva;
	const uint8_t *d;

	if (!vq->st.ready || !vq->desc_hva)
		return KM_ERR_END;
	avail_idx = virtqueue__load16(vq->avail_hva + 2);
	if (avail_idx == vq->st.last_avail)
		return KM_ERR_END;
	if ((uint16_t)(avail_idx - vq->st.last_avail) > num) {
		log_warn("virtqueue: %u buffers available in a queue of %u",
			 (uint16_t)(avail_idx - vq->st.last_avail), num);
		return KM_ERR_CORRUPT;
	}
	memcpy(&i, vq->avail_hva + RING_HDR + 2 * (vq->st.last_avail % num), 2);
	c->head = i;
	c->n = 0;
	c->rlen = c->wlen = 0;
	for (;;) {
		if (i >= num || ++count > num) {
			log_warn("virtqueue: %s in a chain", i >= num ? "descriptor index out of range" :
				 "more descriptors than the queue holds (a loop?)");
			return KM_ERR_CORRUPT;
		}
		d = vq->desc_hva + (uint64_t)DESC_SIZE * i;
		memcpy(&addr, d, 8);
		memcpy(&len, d + 8, 4);
		memcpy(&flags, d + 12, 2);
		if (flags & VIRTQ_DESC_F_INDIRECT) {
			log_warn("virtqueue: an indirect descriptor, not offered");
			return KM_ERR_CORRUPT;
		}
		if (!(flags & VIRTQ_DESC_F_WRITE) && c->wlen) {
			log_warn("virtqueue: a readable buffer after a writable one");
			return KM_ERR_CORRUPT;
		}
		hva = memory__hva(mem, addr, len);
		if (!hva) {
			log_warn("virtqueue: buffer 0x%llx+%u is outside guest RAM",
				 (unsigned long long)addr, len);
			return KM_ERR_CORRUPT;
		}
		c->seg[c->n++] = (struct virtq_seg){ .hva = hva, .gpa = addr, .len = len,
						     .write = flags & VIRTQ_DESC_F_WRITE };
		if (flags & VIRTQ_DESC_F_WRITE)
			c->wlen += len;
		else
			c->rlen += len;
		if (!(flags & VIRTQ_DESC_F_NEXT))
			break;
		memcpy(&i, d + 14, 2);
	}
	vq->st.last_avail++;
	return 0;
}

void virtqueue__push(struct virtqueue *vq, struct kvm_memory *mem, uint16_t head, uint32_t len)
{
	uint32_t slot = vq->st.used_idx % vq->st.num, id = head;
	uint64_t off = RING_HDR + (uint64_t)USED_ELEM * slot;

	memcpy(vq->used_hva + off, &id, 4);
	memcpy(vq->used_hva + off + 4, &len, 4);
	vq->st.used_idx++;
	/* The entry must be visible before the index that hands it over. */
	__atomic_store_n((uint16_t *)(vq->used_hva + 2), vq->st.used_idx, __ATOMIC_RELEASE);
	if (mem->dirty) {
		dirty__mark(mem->dirty, vq->st.used + off, USED_ELEM);
		dirty__mark(mem->dirty, vq->st.used + 2, 2);
	}
}

bool virtqueue__wants_irq(const struct virtqueue *vq)
{
	uint16_t flags;

	if (!vq->avail_hva)
		return false;
	/* After the used index is published: the driver's flag is read afresh (a full fence). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	flags = virtqueue__load16(vq->avail_hva);
	return !(flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
}

uint64_t virtq_chain__read(const struct virtq_chain *c, uint64_t off, void *dst, uint64_t len)
{
	uint8_t *out = dst;
	uint64_t done = 0, n;
	unsigned int i;

	for (i = 0; i < c->n && done < len && !c->seg[i].write; i++) {
		if (off >= c->seg[i].len) {
			off -= c->seg[i].len;
			continue;
		}
		n = c->seg[i].len - off < len - done ? c->seg[i].len - off : len - done;
		memcpy(out + done, c->seg[i].hva + off, n);
		done += n;
		off = 0;
	}
	return done;
}

uint64_t virtq_chain__write(const struct virtq_chain *c, struct kvm_memory *mem, uint64_t off,
			    const void *src, uint64_t len)
{
	const uint8_t *in = src;
	uint64_t done = 0, n;
	unsigned int i;

	for (i = 0; i < c->n && done < len; i++) {
		if (!c->seg[i].write)
			continue;
		if (off >= c->seg[i].len) {
			off -= c->seg[i].len;
			continue;
		}
		n = c->seg[i].len - off < len - done ? c->seg[i].len - off : len - done;
		memcpy(c->seg[i].hva + off, in + done, n);
		if (mem->dirty)
			dirty__mark(mem->dirty, c->seg[i].gpa + off, n);
		done += n;
		off = 0;
	}
	return done;
}
