/* A virtio-blk disk on a raw image. See virtio-blk.h; its state blob is in virtio-blk-state.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "kvm/dirty.h"
#include "kvm/kvm.h"
#include "kvm/virtio-blk-int.h"
#include "kvm/x86/linux.h"

/* Request types and status values (virtio 1.x s.5.2.6). */
#define BLK_T_IN	0
#define BLK_T_OUT	1
#define BLK_T_FLUSH	4
#define BLK_T_GET_ID	8
#define BLK_S_OK	0
#define BLK_S_IOERR	1
#define BLK_S_UNSUPP	2
#define BLK_HDR_SIZE	16	/* u32 type, u32 reserved, u64 sector */

/* The configuration space as far as it is used: capacity, size_max, seg_max. */
#define CFG_CAPACITY	0
#define CFG_SEG_MAX	12
#define CFG_SIZE	16

static void blk__config_read(void *dev, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_blk *b = dev;
	uint8_t cfg[CFG_SIZE] = { 0 };
	uint64_t sectors = b->size / VIRTIO_BLK_SECTOR;
	/* Two descriptors of a request are its header and status; leave room for them. */
	uint32_t seg_max = VIRTIO_BLK_QUEUE_MAX / 2 - 2;

	memcpy(cfg + CFG_CAPACITY, &sectors, 8);
	memcpy(cfg + CFG_SEG_MAX, &seg_max, 4);
	if (off < CFG_SIZE)
		memcpy(data, cfg + off, CFG_SIZE - off < len ? CFG_SIZE - off : len);
}

int virtio_blk__io(struct virtio_blk *b, bool in, void *buf, uint64_t len, uint64_t pos,
		   uint64_t *at)
{
	uint64_t done = 0;
	ssize_t k;

	while (done < len) {
		k = in ? pread(b->fd, (uint8_t *)buf + done, len - done, (off_t)(pos + done)) :
			 pwrite(b->fd, (const uint8_t *)buf + done, len - done, (off_t)(pos + done));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			*at = pos + done;
			return k < 0 ? km_errno() : -EIO;
		}
		done += (uint64_t)k;
	}
	return 0;
}

/*
 * Reads (in: into the chain's writable buffers) or writes (out: from its
 * readable buffers after the header) len bytes of the image at pos, one
 * buffer at a time. Reads land in guest memory and are marked dirty.
 */
static int blk__rw(struct virtio_blk *b, const struct virtq_chain *c, bool in, uint64_t pos,
		   uint64_t len)
{
	uint64_t skip = in ? 0 : BLK_HDR_SIZE, n, at;
	struct kvm_memory *mem = &b->kvm->mem;
	unsigned int i;
	int r;

	for (i = 0; i < c->n && len > 0; i++) {
		const struct virtq_seg *s = &c->seg[i];

		if (s->write != in)
			continue;
		if (skip >= s->len) {
			skip -= s->len;
			continue;
		}
		n = s->len - skip < len ? s->len - skip : len;
		if ((r = virtio_blk__io(b, in, s->hva + skip, n, pos, &at)) != 0) {
			log_warn("disk %s: %s at %llu: %s", b->path, in ? "read" : "write",
				 (unsigned long long)at, km_strerror(r));
			return r;
		}
		if (in && mem->dirty)
			dirty__mark(mem->dirty, s->gpa + skip, n);
		pos += n;
		len -= n;
		skip = 0;
	}
	return 0;
}

/* Does one request; its status byte is the chain's last writable byte. Returns the bytes written. */
static uint32_t blk__request(struct virtio_blk *b, const struct virtq_chain *c)
{
	struct { uint32_t type, reserved; uint64_t sector; } hdr;
	struct kvm_memory *mem = &b->kvm->mem;
	uint64_t data_in, data_out, len, written = 0;
	char id[VIRTIO_BLK_ID_BYTES] = { 0 };
	uint8_t status = BLK_S_OK;
	int r;

	if (c->wlen < 1 || c->wlen > UINT32_MAX) {
		atomic_fetch_add(&b->stats.errors, 1);
		return 0;		/* nowhere to put a status: the request is dropped */
	}
	data_in = c->wlen - 1;
	if (virtq_chain__read(c, 0, &hdr, sizeof(hdr)) != sizeof(hdr)) {
		status = BLK_S_IOERR;
		goto out;
	}
	data_out = c->rlen - BLK_HDR_SIZE;
	switch (hdr.type) {
	case BLK_T_IN:
	case BLK_T_OUT:
		len = hdr.type == BLK_T_IN ? data_in : data_out;
		/* Whole sectors, inside the disk (no sum can overflow: sector is bounded first). */
		if (len % VIRTIO_BLK_SECTOR || hdr.sector > b->size / VIRTIO_BLK_SECTOR ||
		    len > b->size - hdr.sector * VIRTIO_BLK_SECTOR ||
		    (hdr.type == BLK_T_OUT && b->ro)) {
			status = BLK_S_IOERR;
			break;
		}
		r = blk__rw(b, c, hdr.type == BLK_T_IN, hdr.sector * VIRTIO_BLK_SECTOR, len);
		/*
		 * Marked after the write (even a failed one, which may have
		 * written part): a checkpoint that read the bits before it
		 * copies these blocks again in its next round or its pause.
		 */
		if (hdr.type == BLK_T_OUT)
			virtio_blk__mark(b, hdr.sector * VIRTIO_BLK_SECTOR, len);
		if (r != 0) {
			status = BLK_S_IOERR;
			break;
		}
		if (hdr.type == BLK_T_IN) {
			written = len;
			atomic_fetch_add(&b->stats.reads, 1);
			atomic_fetch_add(&b->stats.bytes_read, len);
		} else {
			atomic_fetch_add(&b->stats.writes, 1);
			atomic_fetch_add(&b->stats.bytes_written, len);
		}
		break;
	case BLK_T_FLUSH:
		if (!b->ro && fdatasync(b->fd) < 0) {
			log_warn("disk %s: fdatasync: %s", b->path, km_strerror(km_errno()));
			status = BLK_S_IOERR;
			break;
		}
		atomic_fetch_add(&b->stats.flushes, 1);
		break;
	case BLK_T_GET_ID:
		/* The id is NUL-padded to 20 bytes; the guest's buffer may be shorter. */
		memcpy(id, b->id, strnlen(b->id, sizeof(id)));
		written = virtq_chain__write(c, mem, 0, id, data_in < sizeof(id) ? data_in : sizeof(id));
		atomic_fetch_add(&b->stats.get_ids, 1);
		break;
	default:
		status = BLK_S_UNSUPP;
		atomic_fetch_add(&b->stats.unsupported, 1);
		break;
	}
out:
	if (status == BLK_S_IOERR)
		atomic_fetch_add(&b->stats.errors, 1);
	virtq_chain__write(c, mem, data_in, &status, 1);
	return (uint32_t)(written + 1);
}

/* QueueNotify on the request queue: every available request, in order, then one interrupt. */
static void blk__notify(void *dev, unsigned int q)
{
	struct virtio_blk *b = dev;
	struct virtqueue *vq = &b->mmio.vqs[q];
	struct kvm_memory *mem = &b->kvm->mem;
	bool used = false;
	int r;

	while ((r = virtqueue__pop(vq, mem, &b->chain)) == 0) {
		virtqueue__push(vq, mem, b->chain.head, blk__request(b, &b->chain));
		used = true;
	}
	if (used)
		virtio_mmio__used(&b->mmio, vq);
	if (r == KM_ERR_CORRUPT)
		virtio_mmio__needs_reset(&b->mmio);
}

static const struct virtio_mmio_ops blk__ops = {
	.config_read = blk__config_read,
	.notify = blk__notify,
};

int virtio_blk__open(const char *path, unsigned int flags, struct virtio_blk **out)
{
	struct virtio_blk *b;
	const char *base;
	off_t end;
	int r;

	if (!(b = calloc(1, sizeof(*b))) || !(b->path = strdup(path))) {
		free(b);
		return -ENOMEM;
	}
	b->ro = flags & VIRTIO_BLK_RO;
	b->image_fd = -1;
	pthread_mutex_init(&b->track_lock, NULL);
	b->fd = open(path, (b->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (b->fd < 0) {
		r = km_errno();
		log_error("disk %s: %s", path, km_strerror(r));
		goto out_free;
	}
	if ((end = lseek(b->fd, 0, SEEK_END)) < 0) {
		r = km_errno();
		log_error("disk %s: cannot tell its size: %s", path, km_strerror(r));
		goto out_close;
	}
	b->size = (uint64_t)end;
	if (b->size == 0 || b->size % VIRTIO_BLK_SECTOR) {
		log_error("disk %s: %llu bytes, not a whole number of 512-byte sectors (a raw "
			  "image is)", path, (unsigned long long)b->size);
		r = KM_ERR_INVALID;
		goto out_close;
	}
	if (!(flags & VIRTIO_BLK_NOLOCK) && (r = virtio_blk__lock(b)) != 0)
		goto out_close;
	/* GET_ID's answer: the file's name, as much as fits (a serial, as the guest sees it). */
	base = strrchr(path, '/');
	snprintf(b->id, sizeof(b->id), "%.20s", base ? base + 1 : path);
	if ((r = virtio_mmio__init(&b->mmio, LINUX_VIRTIO_BLK_GPA, LINUX_VIRTIO_BLK_GSI,
				   VIRTIO_ID_BLOCK, virtio_blk__features(b), 1,
				   VIRTIO_BLK_QUEUE_MAX, &blk__ops, b)) != 0)
		goto out_close;
	*out = b;
	return 0;

out_close:
	close(b->fd);
out_free:
	free(b->path);
	free(b);
	return r;
}

int virtio_blk__attach(struct virtio_blk *b, struct kvm *kvm)
{
	if (kvm->blk)
		return KM_ERR_STATE;
	b->kvm = kvm;
	b->mmio.kvm = kvm;
	kvm->blk = b;
	return 0;
}

void virtio_blk__destroy(struct virtio_blk *b)
{
	if (!b)
		return;
	if (b->kvm && b->kvm->blk == b)
		b->kvm->blk = NULL;
	virtio_mmio__destroy(&b->mmio);
	virtio_blk__stage_abort(b);	/* a restore that did not finish: the image as it was */
	close(b->fd);		/* the OFD lock goes with the last descriptor of the open file */
	virtio_blk__track_free(b);
	free(b->path);
	free(b);
}

/* F_OFD_SETLK of type over the whole file. */
static int blk__setlk(struct virtio_blk *b, short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };

	return fcntl(b->fd, F_OFD_SETLK, &fl) < 0 ? km_errno() : 0;
}

int virtio_blk__lock(struct virtio_blk *b)
{
	int r;

	if (b->locked)
		return 0;
	r = blk__setlk(b, b->ro ? F_RDLCK : F_WRLCK);
	if (r == -EAGAIN || r == -EACCES) {
		log_error("disk %s: another VM uses it (the image is locked)", b->path);
		return -EBUSY;
	}
	if (r != 0) {
		log_error("disk %s: cannot lock it: %s", b->path, km_strerror(r));
		return r;
	}
	b->locked = true;
	return 0;
}

int virtio_blk__sync(struct virtio_blk *b)
{
	int r;

	if (b->ro || fdatasync(b->fd) == 0)
		return 0;
	r = km_errno();
	log_error("disk %s: fdatasync: %s", b->path, km_strerror(r));
	return r;
}

void virtio_blk__unlock(struct virtio_blk *b)
{
	if (!b->locked)
		return;
	if (blk__setlk(b, F_UNLCK) != 0)
		log_warn("disk %s: unlock: %s", b->path, km_strerror(km_errno()));
	b->locked = false;
}

const char *virtio_blk__path(const struct virtio_blk *b) { return b->path; }
uint64_t virtio_blk__size(const struct virtio_blk *b) { return b->size; }
bool virtio_blk__ro(const struct virtio_blk *b) { return b->ro; }

void virtio_blk__stats(const struct virtio_blk *b, struct virtio_blk_stats *out)
{
	out->reads = atomic_load(&b->stats.reads);
	out->writes = atomic_load(&b->stats.writes);
	out->flushes = atomic_load(&b->stats.flushes);
	out->get_ids = atomic_load(&b->stats.get_ids);
	out->unsupported = atomic_load(&b->stats.unsupported);
	out->errors = atomic_load(&b->stats.errors);
	out->bytes_read = atomic_load(&b->stats.bytes_read);
	out->bytes_written = atomic_load(&b->stats.bytes_written);
}

bool virtio_blk__owns(const struct virtio_blk *b, uint64_t gpa)
{
	return virtio_mmio__owns(&b->mmio, gpa);
}

void virtio_blk__mmio(struct virtio_blk *b, uint64_t gpa, bool is_write, uint8_t *data,
		      uint32_t len)
{
	virtio_mmio__access(&b->mmio, gpa, is_write, data, len);
}
