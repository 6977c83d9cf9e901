/* Restoring a checkpoint: see restore.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "record.h"
#include "kvm/kvm.h"
#include "kvm/state.h"
#include "kvm/virtio-blk.h"
#include "kvm/vmrec.h"
#include "snapshot/ckptfile.h"
#include "snapshot/restore.h"
#include "snapshot/restore-int.h"
#include "snapshot/store.h"

#define RESTORE_MAX_MEM	(256ULL << 30)

int restore__parse_spec(const char *spec, char *dir, size_t dirlen, uint64_t *id)
{
	const char *at = strrchr(spec, '@'), *p;
	size_t len = strlen(spec);

	*id = 0;
	if (at && at[1]) {
		for (p = at + 1; *p >= '0' && *p <= '9'; p++)
			;
		if (*p == '\0') {
			*id = strtoull(at + 1, NULL, 10);
			len = (size_t)(at - spec);
			if (*id == 0 || *id > STORE_ID_MAX)
				return KM_ERR_INVALID;
		}
	}
	if (len == 0 || len >= dirlen)
		return KM_ERR_INVALID;
	memcpy(dir, spec, len);
	dir[len] = '\0';
	return 0;
}

uint64_t restore__newest(const struct store_entry *e, size_t n)
{
	size_t i, best = 0;

	for (i = 1; i < n; i++)
		if (e[i].time_ns > e[best].time_ns ||
		    (e[i].time_ns == e[best].time_ns && e[i].id > e[best].id))
			best = i;
	return n ? e[best].id : 0;
}

int restore__chain(struct store *st, uint64_t id, struct restore_chain *ch, char *err,
		   size_t errlen)
{
	int r;

	memset(ch, 0, sizeof(*ch));
	if ((r = store__list(st, &ch->e, &ch->n, err, errlen)) != 0)
		goto fail;
	if (!id && !(id = restore__newest(ch->e, ch->n))) {
		r = -ENOENT;
		snprintf(err, errlen, "%s: no checkpoint", store__dir(st));
		goto fail;
	}
	ch->id = id;
	ch->len = ch->n;
	if (!(ch->ids = calloc(ch->n ? ch->n : 1, sizeof(*ch->ids)))) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = store__chain(ch->e, ch->n, id, ch->ids, &ch->len, err, errlen)) != 0)
		goto fail;
	return 0;
fail:
	restore__chain_free(ch);
	return r;
}

void restore__chain_free(struct restore_chain *ch)
{
	free(ch->ids);
	free(ch->e);
	ch->ids = NULL;
	ch->e = NULL;
}

/*
 * --restore-disk: the file the disk goes to, made with the disk's size if
 * it does not exist (*made; a failed restore removes it again; an existing
 * one must have that size: nothing is truncated), and the config (p, len)
 * rewritten into out to name it.
 */
static int restore__retarget(const char *to, const uint8_t *p, uint32_t len, struct buf *out,
			     bool *made, char *why, size_t whylen)
{
	char abs[PATH_MAX];
	const uint8_t *d;
	uint64_t size = 0, ro = 0;
	uint32_t tag, dlen;
	struct buf *v = NULL;
	struct stat sb;
	int fd, r;

	if (rec_find_field(p, len, ST_CFG_DISK, &d, &dlen) != 0 ||
	    rec_find_u64(p, len, ST_CFG_DISK_SIZE, &size) != 0 || size == 0 ||
	    size % VIRTIO_BLK_SECTOR) {
		snprintf(why, whylen, "--restore-disk: the checkpoint names no disk (or not its size)");
		return KM_ERR_INVALID;
	}
	if (rec_find_u64(p, len, ST_CFG_DISK_RO, &ro) == 0 && ro) {
		snprintf(why, whylen, "--restore-disk: the checkpoint's disk is read-only: it holds "
			 "none of its content");
		return KM_ERR_INVALID;
	}
	if ((fd = open(to, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0) {
		r = ftruncate(fd, (off_t)size) == 0 ? 0 : km_errno();
		close(fd);
		if (r) {
			unlink(to);
			snprintf(why, whylen, "--restore-disk %s: %s", to, km_strerror(r));
			return r;
		}
		*made = true;
	} else if (errno != EEXIST || stat(to, &sb) != 0) {
		r = km_errno();
		snprintf(why, whylen, "--restore-disk %s: %s", to, km_strerror(r));
		return r;
	} else if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != size) {
		snprintf(why, whylen, "--restore-disk %s: exists, and is not a file of the disk's "
			 "%llu bytes (remove it, or name another)", to, (unsigned long long)size);
		return KM_ERR_INVALID;
	}
	if (!realpath(to, abs) || strlen(abs) >= 4096) {
		r = km_errno();
		snprintf(why, whylen, "--restore-disk %s: %s", to, km_strerror(r));
		return r;
	}
	if (!(v = buf_view(p, len)))
		return -ENOMEM;
	while ((r = rec_get_field(v, &tag, &d, &dlen)) == 0)
		if ((r = tag == ST_CFG_DISK ? rec_put_field(out, tag, abs, (uint32_t)strlen(abs)) :
					      rec_put_field(out, tag, d, dlen)) != 0)
			break;
	buf_free(v);
	if (r != KM_ERR_END) {
		snprintf(why, whylen, "--restore-disk: the config: %s", km_strerror(r));
		return r;
	}
	return 0;
}

/* The first file's config makes the VM. */
static int restore__create(struct restore *rs, const uint8_t *p, uint32_t len)
{
	uint64_t t0 = kvm__now_ns();
	char why[sizeof(rs->ld.why)];
	struct buf *cfg = NULL;
	char cfgname[64];
	int r;

	if ((r = vmrec_parse_config(p, len, rs->cfg, cfgname, sizeof(cfgname), RESTORE_MAX_MEM,
				    why, sizeof(why))) != 0)
		goto fail;
	if (rs->img) {
		snprintf(rs->img->name, sizeof(rs->img->name), "%s", cfgname);
		if (!(rs->kvm = calloc(1, sizeof(*rs->kvm))) ||
		    (r = memory__init_image(&rs->kvm->mem, rs->cfg->mem_size)) != 0) {
			r = rs->kvm ? r : -ENOMEM;
			snprintf(why, sizeof(why), "guest memory of %llu bytes: %s",
				 (unsigned long long)rs->cfg->mem_size, km_strerror(r));
			goto fail;
		}
		goto loader;
	}
	if (!rs->cfg->name) {
		snprintf(rs->name, rs->namelen, "%s", cfgname);
		rs->cfg->name = rs->name;
	}
	if (rs->disk_to) {
		if (!(cfg = buf_new(REC_MAX_PAYLOAD))) {
			r = -ENOMEM;
			snprintf(why, sizeof(why), "out of memory");
			goto fail;
		}
		if ((r = restore__retarget(rs->disk_to, p, len, cfg, &rs->disk_made, why,
					   sizeof(why))) != 0)
			goto fail;
		p = buf_ptr(cfg);
		len = (uint32_t)buf_len(cfg);
	}
	if ((r = vmrec_create(rs->cfg, p, len, &rs->kvm, why, sizeof(why))) != 0)
		goto fail;
	/*
	 * The disk's lock before a block of it is written: a restore never
	 * overwrites the disk of a VM that runs (kvm-run takes it again, a
	 * no-op, before the VM starts).
	 */
	if (rs->kvm->blk && (r = virtio_blk__lock(rs->kvm->blk)) != 0) {
		snprintf(why, sizeof(why), "disk %s: %s (a restore does not write the disk of a VM "
			 "that runs: stop it first, or restore with --restore-disk FILE)",
			 virtio_blk__path(rs->kvm->blk), r == -EBUSY ? "another VM uses it" :
			 km_strerror(r));
		goto fail;
	}
	/* Its blocks go to a file beside it, which replaces it only if all goes well. */
	if (rs->kvm->blk && !virtio_blk__ro(rs->kvm->blk) &&
	    (r = virtio_blk__stage(rs->kvm->blk)) != 0) {
		snprintf(why, sizeof(why), "disk %s: cannot make the file the restore writes "
			 "beside it: %s", virtio_blk__path(rs->kvm->blk), km_strerror(r));
		goto fail;
	}
loader:
	if ((r = vmrec_load_init(&rs->ld, rs->kvm, true)) != 0) {
		snprintf(why, sizeof(why), "out of memory");
		goto fail;
	}
	rs->loader = true;
	rs->info->create_ns = kvm__now_ns() - t0;
	buf_free(cfg);
	return 0;
fail:
	buf_free(cfg);
	snprintf(rs->ld.why, sizeof(rs->ld.why), "%s", why);
	return r;
}

static int restore__disk_put(void *ctx, uint64_t off, const uint8_t *data)
{
	return virtio_blk__write_block(ctx, off, data);
}

/* Image mode: into a memfd of the disk's size (holes read as zero). */
static int restore__image_put(void *ctx, uint64_t off, const uint8_t *data)
{
	static const uint8_t zero[VIRTIO_BLK_BLOCK];
	struct restore_image *img = ctx;
	uint64_t len = img->disk_size - off < VIRTIO_BLK_BLOCK ? img->disk_size - off :
								   VIRTIO_BLK_BLOCK;

	return pwrite(img->disk_fd, data ? data : zero, len, (off_t)off) == (ssize_t)len ? 0 :
	       km_errno() ? km_errno() : -EIO;
}

/*
 * A REC_DISK_BLOCKS payload: into the VM's disk (locked by restore__create),
 * or the image's memfd, made at the first one.
 */
static int restore__disk(struct restore *rs, const uint8_t *p, uint32_t len)
{
	struct restore_image *img = rs->img;
	struct virtio_blk *blk = rs->kvm->blk;
	uint64_t size = 0;
	int r;

	if (!img) {
		if (!blk || virtio_blk__ro(blk)) {
			snprintf(rs->ld.why, sizeof(rs->ld.why), "disk blocks for a VM without a "
				 "writable disk");
			return KM_ERR_CORRUPT;
		}
		return vmrec_disk_walk(p, len, virtio_blk__size(blk), rs->lz4_ok, restore__disk_put,
				       blk, NULL, NULL, rs->ld.why, sizeof(rs->ld.why));
	}
	if (!img->has_disk) {
		if ((r = vmrec_disk_walk(p, len, 0, rs->lz4_ok, NULL, NULL, &size, NULL, rs->ld.why,
					 sizeof(rs->ld.why))) != 0)
			return r;
		if ((img->disk_fd = memfd_create("km-disk", MFD_CLOEXEC)) < 0 ||
		    ftruncate(img->disk_fd, (off_t)size) != 0) {
			r = km_errno();
			snprintf(rs->ld.why, sizeof(rs->ld.why), "the disk's image of %llu bytes: %s",
				 (unsigned long long)size, km_strerror(r));
			if (img->disk_fd >= 0)
				close(img->disk_fd);
			return r;
		}
		img->disk_size = size;
		img->has_disk = true;
	}
	return vmrec_disk_walk(p, len, img->disk_size, rs->lz4_ok, restore__image_put, img, NULL,
			       NULL, rs->ld.why, sizeof(rs->ld.why));
}

int restore__file_end(struct restore *rs, const struct ckptfile_end *end)
{
	struct virtio_blk *blk = rs->kvm ? rs->kvm->blk : NULL;

	if (!rs->img && blk && !virtio_blk__ro(blk) && !end->has_disk) {
		snprintf(rs->ld.why, sizeof(rs->ld.why), "it holds no content of the VM's writable "
			 "disk %s", virtio_blk__path(blk));
		return KM_ERR_CORRUPT;
	}
	return 0;
}

int restore__disk_done(struct restore *rs)
{
	struct virtio_blk *blk = rs->kvm ? rs->kvm->blk : NULL;
	int r;

	if (rs->img || !blk || virtio_blk__ro(blk))
		return 0;
	if ((r = virtio_blk__stage_commit(blk)) == 0)
		rs->disk_made = false;	/* the restore's now, to keep */
	return r;
}

/* A state record of the checkpoint restored: into the VM, or kept (image mode). */
static int restore__state(struct restore *rs, uint32_t type, const uint8_t *p, uint32_t len)
{
	uint64_t t0 = kvm__now_ns();
	int r;

	if (!rs->img) {
		r = vmrec_load_state(&rs->ld, type, p, len);
		rs->info->state_ns += kvm__now_ns() - t0;
		return r;
	}
	/* The config comes twice (before the pages, and first of the state): keep one. */
	if (type == REC_VM_CONFIG && buf_len(rs->img->state) > 0)
		return 0;
	if ((r = rec_put(rs->img->state, type, p, len)) != 0)
		snprintf(rs->ld.why, sizeof(rs->ld.why), "state records: %s", km_strerror(r));
	return r;
}

int restore__record(struct restore *rs, uint32_t type, const uint8_t *p, uint32_t len,
		    bool first, bool last, restore_pages_fn pages, void *ctx)
{
	if (type == REC_VM_CONFIG) {
		int r = 0;

		if (first && !rs->kvm && (r = restore__create(rs, p, len)) != 0)
			return r;
		return last ? restore__state(rs, type, p, len) : 0;
	}
	/* The page index serves a lazy restore, which reads it apart. */
	if (type == REC_PAGE_INDEX)
		return 0;
	if (type != REC_PAGES && type != REC_VM_STATE && type != REC_VCPU_STATE &&
	    type != REC_DISK_BLOCKS) {
		snprintf(rs->ld.why, sizeof(rs->ld.why), "unexpected record type %u", type);
		return KM_ERR_CORRUPT;
	}
	if (!rs->kvm) {
		snprintf(rs->ld.why, sizeof(rs->ld.why), "%s before the VM config",
			 type == REC_PAGES ? "pages" : type == REC_DISK_BLOCKS ? "disk blocks" :
			 "state");
		return KM_ERR_CORRUPT;
	}
	if (type == REC_PAGES)
		return pages(rs, ctx, p, len);
	if (type == REC_DISK_BLOCKS)
		return restore__disk(rs, p, len);
	return last ? restore__state(rs, type, p, len) : 0;
}

/* The eager restore's pages: written into guest memory now. */
static int restore__pages(struct restore *rs, void *ctx, const uint8_t *p, uint32_t len)
{
	struct ckptfile *f = ctx;

	rs->ld.lz4_ok = (f->caps & STREAM_CAP_LZ4) != 0;
	return vmrec_load_pages(&rs->ld, p, len);
}

/* Applies one file of the chain; last: its state is the one restored. */
static int restore__file(struct restore *rs, const char *path, uint64_t want_id, bool first,
			 bool last)
{
	struct ckptfile f;
	const uint8_t *p;
	uint32_t type, len;
	int r;

	if ((r = ckptfile_open(path, &f, rs->err, rs->errlen)) != 0)
		return r;
	if (f.id.id != want_id) {
		r = KM_ERR_CORRUPT;
		snprintf(rs->err, rs->errlen, "%s holds checkpoint %llu, not %llu", path,
			 (unsigned long long)f.id.id, (unsigned long long)want_id);
		goto out;
	}
	rs->lz4_ok = (f.caps & STREAM_CAP_LZ4) != 0;
	while ((r = ckptfile_next(&f, &type, &p, &len, rs->err, rs->errlen)) == 0)
		if ((r = restore__record(rs, type, p, len, first, last, restore__pages, &f)) != 0)
			goto fail;
	if (r != KM_ERR_END)
		goto out;
	if ((r = restore__file_end(rs, &f.end)) != 0)
		goto fail;
	rs->info->files++;
	if (last && rs->img)
		rs->img->end = f.end;
	if (last)
		restore__info_end(rs->info, &f.end);
	goto out;
fail:
	snprintf(rs->err, rs->errlen, "%s: record %llu: %s", path, (unsigned long long)f.record,
		 rs->ld.why);
out:
	ckptfile_close(&f);
	return r;
}

/* Applies the files of ch, base first; the last one's state is the one restored. */
static int restore__apply(struct restore *rs, struct store *st, const struct restore_chain *ch)
{
	char path[4200];
	size_t i;
	int r;

	for (i = 0; i < ch->len; i++)
		if ((r = store__path(st, ch->ids[i], path, sizeof(path))) != 0 ||
		    (r = restore__file(rs, path, ch->ids[i], i == 0, i == ch->len - 1)) != 0)
			return r;
	return 0;
}

int restore__open_spec(const char *spec, struct store **st, struct restore_chain *ch,
			char *dir, size_t dirlen, struct restore_info *info, char *err,
			size_t errlen)
{
	uint64_t id;
	int r;

	*st = NULL;
	memset(ch, 0, sizeof(*ch));
	memset(info, 0, sizeof(*info));
	if ((r = restore__parse_spec(spec, dir, dirlen, &id)) != 0) {
		snprintf(err, errlen, "'%s': expected DIR or DIR@ID (ID 1..%llu)", spec,
			 (unsigned long long)STORE_ID_MAX);
		return r;
	}
	if ((r = store__open(dir, false, st, err, errlen)) != 0 ||
	    (r = restore__chain(*st, id, ch, err, errlen)) != 0)
		return r;
	info->id = ch->id;
	return 0;
}

void restore__done(struct restore *rs, struct restore_chain *ch, struct store *st)
{
	if (rs->loader)
		vmrec_load_free(&rs->ld);
	rs->loader = false;
	kvm__destroy(rs->kvm);		/* a staged disk not committed goes with it */
	rs->kvm = NULL;
	if (rs->disk_made && unlink(rs->disk_to) != 0)
		log_warn("--restore-disk %s: cannot remove it: %s", rs->disk_to,
			 km_strerror(km_errno()));
	rs->disk_made = false;
	restore__chain_free(ch);
	store__close(st);
}

void restore__info_end(struct restore_info *info, const struct ckptfile_end *end)
{
	info->capture_ns = end->capture_ns;
	info->paused = end->paused;
	info->has_hash = end->has_hash;
	info->mem_hash = end->hash;
}

int restore__vm(const char *spec, const char *disk_to, struct kvm_config *cfg, char *name,
		size_t namelen, struct kvm **out, struct restore_info *info, char *err,
		size_t errlen)
{
	struct restore rs = { .cfg = cfg, .name = name, .namelen = namelen, .info = info,
			      .disk_to = disk_to, .err = err, .errlen = errlen };
	struct restore_chain ch = { 0 };
	struct store *st = NULL;
	char dir[4096];
	int r;

	*out = NULL;
	if ((r = restore__open_spec(spec, &st, &ch, dir, sizeof(dir), info, err, errlen)) != 0)
		goto out;
	if ((r = restore__apply(&rs, st, &ch)) != 0)
		goto out;
	if ((r = vmrec_load_done(&rs.ld)) != 0) {
		snprintf(err, errlen, "%s: checkpoint %llu: %s", dir, (unsigned long long)ch.id,
			 rs.ld.why);
		goto out;
	}
	/* Last: until here a failure leaves the disk's image as it was. */
	if ((r = restore__disk_done(&rs)) != 0) {
		snprintf(err, errlen, "disk %s: %s", virtio_blk__path(rs.kvm->blk), km_strerror(r));
		goto out;
	}
	info->pages = rs.ld.pages;
	*out = rs.kvm;
	rs.kvm = NULL;
out:
	restore__done(&rs, &ch, st);
	return r;
}

int restore__image(struct store *st, uint64_t id, struct restore_image *img, char *err,
		   size_t errlen)
{
	struct kvm_config cfg = { .irqchip = true };
	struct restore_info info;
	struct restore rs = { .img = img, .cfg = &cfg, .info = &info, .err = err,
			      .errlen = errlen };
	struct restore_chain ch = { 0 };
	size_t i;
	int r;

	memset(img, 0, sizeof(*img));
	img->disk_fd = -1;
	memset(&info, 0, sizeof(info));
	if (!(img->state = buf_new(REC_MAX_PAYLOAD))) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = restore__chain(st, id, &ch, err, errlen)) != 0 ||
	    (r = restore__apply(&rs, st, &ch)) != 0)
		goto out;
	for (i = 0; i < ch.n; i++)
		if (ch.e[i].id == ch.id) {
			img->time_ns = ch.e[i].time_ns;
			img->pause_ns = ch.e[i].pause_ns;
		}
	img->id = ch.id;
	img->files = info.files;
	img->kvm = rs.kvm;
	rs.kvm = NULL;
out:
	if (rs.loader)
		vmrec_load_free(&rs.ld);
	if (rs.kvm) {
		memory__destroy(&rs.kvm->mem);
		free(rs.kvm);
	}
	restore__chain_free(&ch);
	if (r != 0)
		restore__image_free(img);
	return r;
}

void restore__image_free(struct restore_image *img)
{
	if (img->kvm) {
		memory__destroy(&img->kvm->mem);
		free(img->kvm);
	}
	buf_free(img->state);
	if (img->has_disk)
		close(img->disk_fd);
	img->has_disk = false;
	img->disk_fd = -1;
	img->kvm = NULL;
	img->state = NULL;
}
