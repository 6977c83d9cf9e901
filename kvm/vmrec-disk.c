/* The VM as records, the disk's part: blocks into REC_DISK_BLOCKS payloads and back (vmrec.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "pages.h"
#include "kvm/virtio-blk.h"
#include "kvm/vmrec.h"

int vmrec_disk_enc_init(struct vmrec_disk_enc *e, uint64_t size, bool compress,
			int (*batch)(void *ctx, const uint8_t *p, uint32_t len), void *ctx)
{
	memset(e, 0, sizeof(*e));
	e->size = size;
	e->compress = compress;
	e->batch = batch;
	e->ctx = ctx;
	if (!(e->payload = buf_new(VMREC_BATCH)))
		return -ENOMEM;
	buf_set_bulk(e->payload);
	return buf_put_u64(e->payload, size);
}

void vmrec_disk_enc_free(struct vmrec_disk_enc *e)
{
	buf_free(e->payload);
	e->payload = NULL;
}

int vmrec_disk_enc_flush(struct vmrec_disk_enc *e)
{
	int r;

	if (!e->in_batch)
		return 0;
	if ((r = e->batch(e->ctx, buf_ptr(e->payload), (uint32_t)buf_len(e->payload))) != 0)
		return r;
	e->blocks += e->in_batch;
	e->in_batch = 0;
	buf_reset(e->payload);
	return buf_put_u64(e->payload, e->size);
}

int vmrec_disk_enc_block(struct vmrec_disk_enc *e, uint64_t n, const uint8_t *data)
{
	struct pages_stats st = { 0 };
	uint64_t off = n * VIRTIO_BLK_BLOCK;
	int r;

	if (off >= e->size)
		return KM_ERR_INVALID;
	r = pages_put(e->payload, off, data, e->compress, &st);
	if (r == KM_ERR_NO_SPACE) {
		if ((r = vmrec_disk_enc_flush(e)) != 0)
			return r;
		r = pages_put(e->payload, off, data, e->compress, &st);
	}
	if (r == 0)
		e->in_batch++;
	return r;
}

int vmrec_disk_walk(const uint8_t *p, uint32_t len, uint64_t size, bool lz4_ok,
		    vmrec_disk_put_fn put, void *ctx, uint64_t *size_out, uint64_t *blocks,
		    char *why, size_t whylen)
{
	uint8_t block[VIRTIO_BLK_BLOCK];
	const uint8_t *data;
	struct buf *v = NULL;
	enum page_kind kind;
	uint64_t have, off, n = 0;
	uint32_t dlen;
	int r;

	if (!(v = buf_view(p, len)))
		return -ENOMEM;
	if (buf_get_u64(v, &have) != 0 || have == 0 || have % VIRTIO_BLK_SECTOR) {
		r = KM_ERR_CORRUPT;
		snprintf(why, whylen, "disk blocks: no valid disk size");
		goto out;
	}
	if (size && have != size) {
		r = KM_ERR_INVALID;
		snprintf(why, whylen, "disk blocks of a disk of %llu bytes, not of this one's %llu",
			 (unsigned long long)have, (unsigned long long)size);
		goto out;
	}
	if (size_out)
		*size_out = have;
	while ((r = pages_get(v, &off, &kind, &data, &dlen)) == 0) {
		if (off >= have) {
			r = KM_ERR_CORRUPT;
			snprintf(why, whylen, "disk block %llu: at byte %llu, past the disk's end",
				 (unsigned long long)n, (unsigned long long)off);
			goto out;
		}
		if (kind == PAGE_LZ4 && !lz4_ok) {
			r = KM_ERR_CORRUPT;
			snprintf(why, whylen, "disk block %llu: lz4 in a file without lz4",
				 (unsigned long long)n);
			goto out;
		}
		if (kind != PAGE_ZERO && (r = pages_expand(kind, data, dlen, block)) != 0) {
			snprintf(why, whylen, "disk block %llu: %s", (unsigned long long)n,
				 km_strerror(r));
			goto out;
		}
		if (put && (r = put(ctx, off, kind == PAGE_ZERO ? NULL : block)) != 0) {
			snprintf(why, whylen, "disk block at byte %llu: %s", (unsigned long long)off,
				 km_strerror(r));
			goto out;
		}
		n++;
	}
	if (r == KM_ERR_END)
		r = 0;
	else
		snprintf(why, whylen, "disk block %llu: %s", (unsigned long long)n, km_strerror(r));
out:
	if (blocks)
		*blocks = n;
	buf_free(v);
	return r;
}
