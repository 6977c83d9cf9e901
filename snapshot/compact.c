/* Compaction of a checkpoint chain into a base: see compact.h. */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "record.h"
#include "stream.h"
#include "kvm/kvm.h"
#include "kvm/virtio-blk.h"
#include "kvm/vmrec.h"
#include "snapshot/ckptfile.h"
#include "snapshot/compact.h"
#include "snapshot/restore.h"
#include "snapshot/store.h"

struct compact {
	struct stream *s;
	struct ckptfile_index index;
	uint64_t pages;
};

static int compact__disk_batch(void *ctx, const uint8_t *p, uint32_t len)
{
	struct compact *c = ctx;

	return stream_put(c->s, REC_DISK_BLOCKS, p, len);
}

/* Every block of the chain's disk, as a base holds it (holes of the image go as zero blocks). */
static int compact__disk(struct restore_image *img, bool compress, struct compact *c,
			 uint64_t *blocks)
{
	struct vmrec_disk_enc enc = { 0 };
	uint8_t block[VIRTIO_BLK_BLOCK];
	uint64_t n, nr = (img->disk_size + VIRTIO_BLK_BLOCK - 1) / VIRTIO_BLK_BLOCK, len;
	ssize_t k;
	int r;

	if ((r = vmrec_disk_enc_init(&enc, img->disk_size, compress, compact__disk_batch, c)) != 0)
		goto out;
	for (n = 0; n < nr; n++) {
		len = img->disk_size - n * VIRTIO_BLK_BLOCK;
		len = len < VIRTIO_BLK_BLOCK ? len : VIRTIO_BLK_BLOCK;
		memset(block, 0, sizeof(block));
		if ((k = pread(img->disk_fd, block, len, (off_t)(n * VIRTIO_BLK_BLOCK))) !=
		    (ssize_t)len) {
			r = k < 0 ? km_errno() : -EIO;
			goto out;
		}
		if ((r = vmrec_disk_enc_block(&enc, n, block)) != 0)
			goto out;
	}
	r = vmrec_disk_enc_flush(&enc);
	*blocks = enc.blocks;
out:
	vmrec_disk_enc_free(&enc);
	return r;
}

static int compact__batch(void *ctx, struct buf **payload, const struct pages_stats *st)
{
	struct compact *c = ctx;

	c->pages += st->pages;
	return ckptfile_put_pages(c->s, &c->index, payload);
}

/* The base's file: header, identity, config, every page the image holds, the state, the end. */
static int compact__write(struct restore_image *img, struct store_pending *p, bool compress,
			  struct compact *c)
{
	struct vmrec_enc enc = { 0 };
	struct bitmap all = { 0 };
	struct chan *chan = NULL;
	struct ckptfile_end end = img->end;
	const uint8_t *cfg;
	uint32_t type, cfglen;
	struct buf *view = NULL;
	int fd, r;

	if ((fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0)) < 0)
		return km_errno();
	if ((r = chan_file(fd, p->tmp, &chan)) != 0) {
		close(fd);
		return r;
	}
	if (!(c->s = stream_new(chan)) || !(view = buf_view(buf_ptr(img->state),
							      buf_len(img->state)))) {
		r = -ENOMEM;
		goto out;
	}
	/* The state records start with the config (restore.c keeps it first). */
	if ((r = rec_get(view, REC_MAX_PAYLOAD, &type, &cfg, &cfglen)) != 0 ||
	    (r = type == REC_VM_CONFIG ? 0 : KM_ERR_CORRUPT) != 0)
		goto out;
	if ((r = stream_put_header(c->s, STREAM_SNAPSHOT, compress ? STREAM_CAP_LZ4 : 0)) != 0 ||
	    (r = ckptfile_put_identity(c->s, p->id, 0, STORE_FULL, img->name)) != 0 ||
	    (r = stream_put(c->s, REC_VM_CONFIG, cfg, cfglen)) != 0)
		goto out;
	if ((r = bitmap_init(&all, memory__nr_pages(&img->kvm->mem))) != 0 ||
	    (r = ckptfile_index_init(&c->index)) != 0 ||
	    (r = vmrec_enc_init(&enc, img->kvm, compress, compact__batch, c)) != 0)
		goto out;
	bitmap_fill(&all);
	/* The disk first, as a checkpoint writes its pre-copy. */
	if (img->has_disk && (r = compact__disk(img, compress, c, &end.disk_blocks)) != 0)
		goto out;
	end.has_disk = img->has_disk;
	/* Every page the chain wrote, from the image's data ranges; zero pages go as zero. */
	if ((r = vmrec_enc_set(&enc, &all, true, NULL, NULL, NULL)) != 0 ||
	    (r = vmrec_enc_flush(&enc)) != 0 || (r = ckptfile_put_index(c->s, &c->index)) != 0 ||
	    (r = stream_put_framed(c->s, buf_ptr(img->state), buf_len(img->state))) != 0)
		goto out;
	end.pages = c->pages;
	if ((r = ckptfile_put_end(c->s, &end)) != 0 || (r = stream_flush(c->s)) != 0)
		goto out;
out:
	vmrec_enc_free(&enc);
	ckptfile_index_free(&c->index);
	bitmap_free(&all);
	buf_free(view);
	stream_free(c->s);
	c->s = NULL;
	chan_close(chan);
	return r;
}

int compact__chain(struct store *st, uint64_t top, bool compress, struct compact_result *res,
		   char *err, size_t errlen)
{
	struct restore_image img = { 0 };
	struct restore_chain ch = { 0 };
	struct store_pending p = { .fd = -1 };
	struct store_entry base = { 0 };
	struct compact c = { 0 };
	size_t i, j;
	int r;

	memset(res, 0, sizeof(*res));
	if ((r = restore__chain(st, top, &ch, err, errlen)) != 0)
		goto out;
	if (ch.len < 2) {
		r = KM_ERR_STATE;
		snprintf(err, errlen, "%s: checkpoint %llu is a base: nothing to compact",
			 store__dir(st), (unsigned long long)ch.id);
		goto out;
	}
	for (i = 0; i < ch.n; i++)
		for (j = 0; j < ch.len; j++)
			if (ch.e[i].id == ch.ids[j])
				res->bytes_before += ch.e[i].bytes;
	if ((r = restore__image(st, ch.id, &img, err, errlen)) != 0)
		goto out;
	if ((r = store__begin(st, &p, err, errlen)) != 0)
		goto out;
	if ((r = compact__write(&img, &p, compress, &c)) != 0) {
		snprintf(err, errlen, "%s: writing the compacted base: %s", store__dir(st),
			 km_strerror(r));
		goto out;
	}
	/* It stands for top: top's time (retention orders by it) and pause. */
	base.kind = STORE_FULL;
	base.time_ns = img.time_ns;
	base.pause_ns = img.pause_ns;
	base.pages = c.pages;
	if ((r = store__commit_replacing(st, &p, &base, ch.ids, ch.len, err, errlen)) != 0)
		goto out;
	res->id = base.id;
	res->merged = (unsigned int)ch.len;
	res->pages = c.pages;
	res->bytes = base.bytes;
out:
	store__abort(st, &p);
	restore__image_free(&img);
	restore__chain_free(&ch);
	return r;
}
