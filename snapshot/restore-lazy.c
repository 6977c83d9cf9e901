/*
 * Lazy restore (restore.h, restore__vm_lazy): the VM runs before its
 * pages are in guest memory. The chain's files are mapped, not read: a
 * walk over their record headers and page entries (no page is copied,
 * no payload checksummed) finds the newest copy of every page, the state
 * of the checkpoint is loaded (those records are checksummed), and the
 * VM may start; lazymem brings each page in from the mapped file when it
 * is touched, or before in prefetch mode, checking the checksum of a page
 * record the first time one of its pages is used.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22	/* Linux 5.14 */
#endif

#include "err.h"
#include "pages.h"
#include "record.h"
#include "kvm/kvm.h"
#include "kvm/lazymem.h"
#include "kvm/virtio-blk.h"
#include "kvm/vmrec.h"
#include "snapshot/ckptfile.h"
#include "snapshot/restore-int.h"
#include "snapshot/store.h"

/* A mapped file of the chain. */
struct lazy_file {
	char path[4200];
	const uint8_t *map;
	size_t size;
	bool lz4_ok;
};

/* A REC_PAGES record: checked once, when one of its pages is first used. */
struct lazy_rec {
	uint32_t file;
	uint32_t number;		/* its index in the file, for messages */
	uint64_t off;			/* of its header */
	bool verified;
};

/* Where the newest copy of each page is; the source lazymem reads. */
struct lazy_chain {
	struct lazy_file *files;
	unsigned int nfiles;
	struct lazy_rec *recs;
	uint32_t nrecs, caprecs;
	uint32_t *rec_of;		/* page -> 1 + its record; 0: zero or never written */
	uint64_t *off_of;		/* page -> its entry's offset in the file */
	uint64_t nr_pages;
	const struct kvm_memory *mem;	/* the VM's: page numbers */
};

static void lazy_chain_free(void *ctx)
{
	struct lazy_chain *lc = ctx;
	unsigned int i;

	if (!lc)
		return;
	for (i = 0; i < lc->nfiles; i++)
		if (lc->files[i].map)
			munmap((void *)lc->files[i].map, lc->files[i].size);
	free(lc->files);
	free(lc->recs);
	free(lc->rec_of);
	free(lc->off_of);
	free(lc);
}

static int lazy_chain_read(void *ctx, uint64_t n, uint8_t *page, char *why, size_t whylen)
{
	struct lazy_chain *lc = ctx;
	struct lazy_rec *rec;
	struct lazy_file *f;
	const uint8_t *hdr, *data;
	struct buf *view;
	enum page_kind kind;
	uint64_t gpa;
	uint32_t type, len, dlen;
	int r;

	if (n >= lc->nr_pages || !lc->rec_of[n]) {
		memset(page, 0, KM_PAGE_SIZE);
		return 0;
	}
	rec = &lc->recs[lc->rec_of[n] - 1];
	f = &lc->files[rec->file];
	hdr = f->map + rec->off;
	if (!rec->verified) {
		if ((r = rec_verify(hdr)) != 0) {
			snprintf(why, whylen, "%s: record %u: %s", f->path, rec->number,
				 r == KM_ERR_CORRUPT ? "checksum mismatch" : km_strerror(r));
			return r;
		}
		rec->verified = true;
	}
	/* Framed and walked when the chain was indexed: the entry is where it was found. */
	(void)rec_frame(hdr, f->size - rec->off, REC_MAX_PAYLOAD, &type, &len);
	if (!(view = buf_view(f->map + lc->off_of[n], rec->off + REC_HDR_SIZE + len -
			      lc->off_of[n])))
		return -ENOMEM;
	r = pages_get(view, &gpa, &kind, &data, &dlen);
	buf_free(view);
	/* A page index could name another entry than the page's: never trusted blindly. */
	if (r == 0 && memory__page_of(lc->mem, gpa) != n)
		r = KM_ERR_CORRUPT;
	if (r == 0)
		r = pages_expand(kind, data, dlen, page);
	if (r != 0)
		snprintf(why, whylen, "%s: record %u: %s", f->path, rec->number, km_strerror(r));
	return r;
}

/* Where the walk is: the record restore__record hands over. */
struct lazy_pos {
	struct lazy_chain *lc;
	uint32_t fi, number;
};

/* The index, for the guest memory kvm has (once its config made it). */
static int lazy_alloc(struct lazy_chain *lc, struct kvm *kvm)
{
	lc->mem = &kvm->mem;
	lc->nr_pages = memory__nr_pages(&kvm->mem);
	if (!(lc->rec_of = calloc(lc->nr_pages ? lc->nr_pages : 1, sizeof(*lc->rec_of))) ||
	    !(lc->off_of = calloc(lc->nr_pages ? lc->nr_pages : 1, sizeof(*lc->off_of))))
		return -ENOMEM;
	return 0;
}

/* Page n's newest copy is entry at file offset off of record rec (0-based), or zero. */
static int lazy_set(struct restore *rs, struct lazy_chain *lc, uint32_t rec, uint64_t gpa,
		    enum page_kind kind, uint64_t off)
{
	uint64_t n;

	if (kind == PAGE_LZ4 && !lc->files[lc->recs[rec].file].lz4_ok) {
		snprintf(rs->ld.why, sizeof(rs->ld.why), "an lz4 page in a file whose header "
			 "does not allow them");
		return KM_ERR_CORRUPT;
	}
	if ((n = memory__page_of(&rs->kvm->mem, gpa)) == UINT64_MAX) {
		snprintf(rs->ld.why, sizeof(rs->ld.why), "a page at 0x%llx, outside guest RAM",
			 (unsigned long long)gpa);
		return KM_ERR_CORRUPT;
	}
	/* The last copy wins; a zero page clears what an older file held. */
	lc->rec_of[n] = kind == PAGE_ZERO ? 0 : rec + 1;
	lc->off_of[n] = off;
	rs->info->pages++;
	return 0;
}

/* A REC_PAGES record of the file being walked: noted, its entries read later. */
static int lazy_note_pages(struct restore *rs, void *ctx, const uint8_t *p, uint32_t len)
{
	struct lazy_pos *pos = ctx;
	struct lazy_chain *lc = pos->lc;
	struct lazy_file *f = &lc->files[pos->fi];

	(void)len;
	if (!lc->rec_of && lazy_alloc(lc, rs->kvm) != 0)
		goto nomem;
	if (lc->nrecs == lc->caprecs) {
		uint32_t cap = lc->caprecs ? lc->caprecs * 2 : 256;
		struct lazy_rec *nr = reallocarray(lc->recs, cap, sizeof(*nr));

		if (!nr)
			goto nomem;
		lc->recs = nr;
		lc->caprecs = cap;
	}
	lc->recs[lc->nrecs++] = (struct lazy_rec){
		.file = pos->fi, .number = pos->number,
		.off = (uint64_t)(p - f->map) - REC_HDR_SIZE,
	};
	return 0;
nomem:
	snprintf(rs->ld.why, sizeof(rs->ld.why), "out of memory");
	return -ENOMEM;
}

/* Without a page index: every entry of page record rec, walked (not checksummed). */
static int lazy_walk_pages(struct restore *rs, struct lazy_chain *lc, uint32_t rec)
{
	struct lazy_file *f = &lc->files[lc->recs[rec].file];
	const uint8_t *hdr = f->map + lc->recs[rec].off, *entry, *data;
	struct buf *view;
	enum page_kind kind;
	uint32_t type, len, dlen;
	uint64_t gpa;
	int r;

	(void)rec_frame(hdr, f->size - lc->recs[rec].off, REC_MAX_PAYLOAD, &type, &len);
	if (!(view = buf_view(hdr + REC_HDR_SIZE, len))) {
		snprintf(rs->ld.why, sizeof(rs->ld.why), "out of memory");
		return -ENOMEM;
	}
	for (;;) {
		entry = buf_ptr(view);
		if ((r = pages_get(view, &gpa, &kind, &data, &dlen)) != 0 ||
		    (r = lazy_set(rs, lc, rec, gpa, kind, (uint64_t)(entry - f->map))) != 0)
			break;
	}
	buf_free(view);
	if (r == KM_ERR_END)
		return 0;
	if (r != KM_ERR_CORRUPT || !rs->ld.why[0])
		snprintf(rs->ld.why, sizeof(rs->ld.why), "page entries: %s", km_strerror(r));
	return r;
}

/*
 * A REC_PAGE_INDEX payload (checksummed) of file fi: groups of (u64 record
 * offset, u32 entries, entries of u64 gpa | kind and u32 offset in the
 * payload), for the file's page records in order from *next. Each entry
 * is bounded by its record; it is read for real when its page is.
 */
static int lazy_apply_index(struct restore *rs, struct lazy_chain *lc, uint32_t fi,
			    const uint8_t *p, uint32_t len, uint32_t *next)
{
	struct lazy_file *f = &lc->files[fi];
	struct buf *view = buf_view(p, len);
	uint64_t rec_off, v;
	uint32_t n, i, off, type, rlen;
	int r = 0;

	if (!view) {
		snprintf(rs->ld.why, sizeof(rs->ld.why), "out of memory");
		return -ENOMEM;
	}
	while (buf_len(view) > 0) {
		if (buf_get_u64(view, &rec_off) != 0 || buf_get_u32(view, &n) != 0 ||
		    *next >= lc->nrecs || lc->recs[*next].file != fi ||
		    lc->recs[*next].off != rec_off || buf_len(view) / CKPT_INDEX_ENTRY < n) {
			r = KM_ERR_CORRUPT;
			snprintf(rs->ld.why, sizeof(rs->ld.why), "the page index does not match the "
				 "file's page records");
			break;
		}
		(void)rec_frame(f->map + rec_off, f->size - rec_off, REC_MAX_PAYLOAD, &type, &rlen);
		for (i = 0; i < n && r == 0; i++) {
			(void)buf_get_u64(view, &v);
			(void)buf_get_u32(view, &off);
			if ((v & 0xfff) > PAGE_LZ4 || off >= rlen) {
				r = KM_ERR_CORRUPT;
				snprintf(rs->ld.why, sizeof(rs->ld.why), "the page index names an entry "
					 "that cannot be");
				break;
			}
			r = lazy_set(rs, lc, *next, v & ~0xfffULL, (enum page_kind)(v & 0xfff),
				     rec_off + REC_HDR_SIZE + off);
		}
		if (r != 0)
			break;
		(*next)++;
	}
	buf_free(view);
	return r;
}

static int lazy_map(struct lazy_file *f, const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd, r = 0;

	snprintf(f->path, sizeof(f->path), "%s", path);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0 || fstat(fd, &st) != 0) {
		r = km_errno();
		goto out;
	}
	f->size = (size_t)st.st_size;
	/* Private: the store may replace the file (compaction), never write into it. */
	f->map = f->size ? mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
	if (f->map == MAP_FAILED) {
		f->map = NULL;
		r = km_errno();
	}
out:
	if (fd >= 0)
		close(fd);
	if (r)
		snprintf(err, errlen, "%s: %s", path, km_strerror(r));
	return r;
}

/*
 * One file of the chain: its header and identity checked as the eager
 * restore checks them, then its records walked in the mapping.
 */
static int lazy_file(struct restore *rs, struct lazy_chain *lc, uint32_t fi, uint64_t want_id,
		     bool first, bool last)
{
	struct lazy_file *f = &lc->files[fi];
	struct lazy_pos pos = { .lc = lc, .fi = fi };
	uint32_t first_rec = lc->nrecs, next, rec, type, len, number, *ix = NULL, nix = 0;
	struct ckptfile cf;
	const uint8_t *p;
	uint64_t off = 0;
	bool ended = false;
	int r;

	if ((r = ckptfile_open(f->path, &cf, rs->err, rs->errlen)) != 0)
		return r;
	f->lz4_ok = rs->lz4_ok = (cf.caps & STREAM_CAP_LZ4) != 0;
	if (cf.id.id != want_id) {
		r = KM_ERR_CORRUPT;
		snprintf(rs->err, rs->errlen, "%s holds checkpoint %llu, not %llu", f->path,
			 (unsigned long long)cf.id.id, (unsigned long long)want_id);
		goto out;
	}
	for (number = 0; off < f->size && !ended; number++, off += REC_HDR_SIZE + len) {
		if ((r = rec_frame(f->map + off, f->size - off, REC_MAX_PAYLOAD, &type, &len)) != 0) {
			snprintf(rs->ld.why, sizeof(rs->ld.why), "%s", r == KM_ERR_TRUNCATED ?
				 "the file ends inside it (a torn or truncated file)" :
				 km_strerror(r));
			goto fail;
		}
		p = f->map + off + REC_HDR_SIZE;
		/* Header and identity were read above; page records are checked when used. */
		if (number >= 2 && type != REC_PAGES && (r = rec_verify(f->map + off)) != 0) {
			snprintf(rs->ld.why, sizeof(rs->ld.why), "checksum mismatch");
			goto fail;
		}
		if (number < 2) {
			continue;
		} else if (type == REC_END) {
			if ((r = ckptfile_parse_end(p, len, &cf.end)) != 0) {
				snprintf(rs->ld.why, sizeof(rs->ld.why), "end record: %s",
					 km_strerror(r));
				goto fail;
			}
			if ((r = restore__file_end(rs, &cf.end)) != 0)
				goto fail;
			ended = true;
		} else if (type == REC_PAGE_INDEX) {
			uint32_t *nix_p = reallocarray(ix, nix + 1, sizeof(*ix));

			if (!nix_p) {
				r = -ENOMEM;
				snprintf(rs->ld.why, sizeof(rs->ld.why), "out of memory");
				goto fail;
			}
			ix = nix_p;
			ix[nix++] = number;
		} else {
			pos.number = number;
			if ((r = restore__record(rs, type, p, len, first, last, lazy_note_pages,
						 &pos)) != 0)
				goto fail;
		}
	}
	if (!ended || off != f->size) {
		r = ended ? KM_ERR_CORRUPT : KM_ERR_TRUNCATED;
		snprintf(rs->err, rs->errlen, "%s: %s", f->path, ended ?
			 "data after its end record" : "no end record: an incomplete file");
		goto out;
	}
	if (nix) {
		/* The index says where every entry is: no page record is read now. */
		for (next = first_rec, off = 0, number = 0; off < f->size && nix; ) {
			(void)rec_frame(f->map + off, f->size - off, REC_MAX_PAYLOAD, &type, &len);
			if (number == ix[0]) {
				if ((r = lazy_apply_index(rs, lc, fi, f->map + off + REC_HDR_SIZE, len,
							  &next)) != 0)
					goto fail;
				memmove(ix, ix + 1, --nix * sizeof(*ix));
			}
			off += REC_HDR_SIZE + len;
			number++;
		}
		rs->info->indexed++;
		if (next != lc->nrecs) {
			r = KM_ERR_CORRUPT;
			snprintf(rs->err, rs->errlen, "%s: its page index leaves out page records",
				 f->path);
			goto out;
		}
	} else {
		/* A file without one (an older writer): every entry walked, the file mapped in first. */
		(void)madvise((void *)f->map, f->size, MADV_POPULATE_READ);
		for (rec = first_rec; rec < lc->nrecs; rec++)
			if ((r = lazy_walk_pages(rs, lc, rec)) != 0) {
				number = lc->recs[rec].number;
				goto fail;
			}
	}
	rs->info->files++;
	if (last)
		restore__info_end(rs->info, &cf.end);
	r = 0;
	goto out;
fail:
	snprintf(rs->err, rs->errlen, "%s: record %u: %s", f->path, number, rs->ld.why);
out:
	free(ix);
	ckptfile_close(&cf);
	return r;
}

int restore__vm_lazy(const char *spec, const char *disk_to, bool prefetch,
		     struct kvm_config *cfg, char *name, size_t namelen, struct kvm **out,
		     struct restore_info *info, char *err, size_t errlen)
{
	struct restore rs = { .cfg = cfg, .name = name, .namelen = namelen, .info = info,
			      .disk_to = disk_to, .err = err, .errlen = errlen };
	struct lazy_source src = { .read = lazy_chain_read, .free = lazy_chain_free };
	struct restore_chain ch = { 0 };
	struct lazy_chain *lc = NULL;
	struct bitmap absent = { 0 };
	struct store *st = NULL;
	uint64_t n, t, t0 = kvm__now_ns();
	char dir[4096], path[4200];
	size_t i;
	int r;

	*out = NULL;
	if ((r = restore__open_spec(spec, &st, &ch, dir, sizeof(dir), info, err, errlen)) != 0)
		goto out;
	if (!(lc = calloc(1, sizeof(*lc))) || !(lc->files = calloc(ch.len, sizeof(*lc->files)))) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	lc->nfiles = (unsigned int)ch.len;
	for (i = 0; i < ch.len; i++)
		if ((r = store__path(st, ch.ids[i], path, sizeof(path))) != 0 ||
		    (r = lazy_map(&lc->files[i], path, err, errlen)) != 0)
			goto out;
	for (i = 0; i < ch.len; i++)
		if ((r = lazy_file(&rs, lc, (uint32_t)i, ch.ids[i], i == 0, i == ch.len - 1)) != 0)
			goto out;
	if (!lc->rec_of && (r = lazy_alloc(lc, rs.kvm)) != 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	t = kvm__now_ns();
	if ((r = vmrec_load_done(&rs.ld)) != 0) {
		snprintf(err, errlen, "%s: checkpoint %llu: %s", dir, (unsigned long long)ch.id,
			 rs.ld.why);
		goto out;
	}
	info->state_ns += kvm__now_ns() - t;
	if ((r = bitmap_init(&absent, lc->nr_pages)) != 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (n = 0; n < lc->nr_pages; n++)
		if (lc->rec_of[n])
			bitmap_set(&absent, n);
	info->absent = bitmap_count(&absent);
	info->index_ns = kvm__now_ns() - t0;
	/*
	 * The disk is not lazy: its blocks were written during the walk, into
	 * a file beside the image that takes its place now.
	 */
	if ((r = restore__disk_done(&rs)) != 0) {
		snprintf(err, errlen, "disk %s: %s", virtio_blk__path(rs.kvm->blk), km_strerror(r));
		goto out;
	}
	src.ctx = lc;
	r = lazymem__start(rs.kvm, &absent, &src, prefetch, err, errlen);
	lc = NULL;	/* lazymem owns it now, and freed it if it failed */
	if (r != 0)
		goto out;
	*out = rs.kvm;
	rs.kvm = NULL;
out:
	bitmap_free(&absent);
	lazy_chain_free(lc);
	restore__done(&rs, &ch, st);
	return r;
}
