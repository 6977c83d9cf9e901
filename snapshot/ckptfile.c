/* Checkpoint files: see ckptfile.h. */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "pages.h"
#include "record.h"
#include "snapshot/ckptfile.h"

int ckptfile_put_identity(struct stream *s, uint64_t id, uint64_t parent, uint64_t kind,
			  const char *name)
{
	struct buf *b = buf_new(512);
	int r;

	if (!b)
		return -ENOMEM;
	if ((r = rec_put_field_u64(b, CK_ID, id)) == 0 &&
	    (r = rec_put_field_u64(b, CK_PARENT, parent)) == 0 &&
	    (r = rec_put_field_u64(b, CK_KIND, kind)) == 0 &&
	    (r = rec_put_field(b, CK_NAME, name, (uint32_t)strnlen(name, 63))) == 0)
		r = stream_put(s, REC_CHECKPOINT, buf_ptr(b), (uint32_t)buf_len(b));
	buf_free(b);
	return r;
}

int ckptfile_put_end(struct stream *s, const struct ckptfile_end *e)
{
	struct buf *b = buf_new(512);
	int r;

	if (!b)
		return -ENOMEM;
	if ((r = rec_put_field_u64(b, CKE_CAPTURE_NS, e->capture_ns)) == 0 &&
	    (r = rec_put_field_u64(b, CKE_PAUSED, e->paused)) == 0 &&
	    (r = rec_put_field_u64(b, CKE_PAUSE_NS, e->pause_ns)) == 0 &&
	    (r = rec_put_field_u64(b, CKE_PAGES, e->pages)) == 0 &&
	    (!e->has_hash || (r = rec_put_field_u64(b, CKE_MEM_HASH, e->hash)) == 0) &&
	    (!e->has_disk || (r = rec_put_field_u64(b, CKE_DISK_BLOCKS, e->disk_blocks)) == 0))
		r = stream_put(s, REC_END, buf_ptr(b), (uint32_t)buf_len(b));
	buf_free(b);
	return r;
}

/* A required u64 field; absent or malformed is damage. */
static int ckptfile__u64(const uint8_t *p, uint32_t len, uint32_t tag, uint64_t *v)
{
	int r = rec_find_u64(p, len, tag, v);

	return r == KM_ERR_END ? KM_ERR_CORRUPT : r;
}

int ckptfile_parse_end(const uint8_t *p, uint32_t len, struct ckptfile_end *e)
{
	uint64_t paused;
	int r;

	memset(e, 0, sizeof(*e));
	if ((r = ckptfile__u64(p, len, CKE_CAPTURE_NS, &e->capture_ns)) != 0 ||
	    (r = ckptfile__u64(p, len, CKE_PAUSED, &paused)) != 0 ||
	    (r = ckptfile__u64(p, len, CKE_PAUSE_NS, &e->pause_ns)) != 0 ||
	    (r = ckptfile__u64(p, len, CKE_PAGES, &e->pages)) != 0)
		return r;
	e->paused = paused != 0;
	r = rec_find_u64(p, len, CKE_MEM_HASH, &e->hash);
	if (r != 0 && r != KM_ERR_END)
		return r;
	e->has_hash = r == 0;
	r = rec_find_u64(p, len, CKE_DISK_BLOCKS, &e->disk_blocks);
	if (r != 0 && r != KM_ERR_END)
		return r;
	e->has_disk = r == 0;
	return 0;
}

static int ckptfile__parse_id(const uint8_t *p, uint32_t len, struct ckptfile_id *id)
{
	const uint8_t *d;
	uint32_t dlen;
	int r;

	memset(id, 0, sizeof(*id));
	if ((r = ckptfile__u64(p, len, CK_ID, &id->id)) != 0 ||
	    (r = ckptfile__u64(p, len, CK_PARENT, &id->parent)) != 0 ||
	    (r = ckptfile__u64(p, len, CK_KIND, &id->kind)) != 0)
		return r;
	if (id->kind != 1 && id->kind != 2)
		return KM_ERR_CORRUPT;
	if (rec_find_field(p, len, CK_NAME, &d, &dlen) == 0 && dlen < sizeof(id->name))
		memcpy(id->name, d, dlen);
	return 0;
}

static const char *ckptfile__what(int r)
{
	switch (r) {
	case KM_ERR_TRUNCATED:
	case KM_ERR_END:
		return "the file ends in the middle (truncated, or still being written)";
	case KM_ERR_CORRUPT:
		return "damaged (checksum or field mismatch)";
	case KM_ERR_TOO_LARGE:
		return "damaged (a length beyond any record's)";
	default:
		return km_strerror(r);
	}
}

int ckptfile_open(const char *path, struct ckptfile *f, char *err, size_t errlen)
{
	enum stream_purpose purpose;
	const uint8_t *p;
	uint32_t type, len;
	int fd, r;

	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "%s", path);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		r = km_errno();
		snprintf(err, errlen, "%s: %s", path, km_strerror(r));
		return r;
	}
	if ((r = chan_file(fd, path, &f->chan)) != 0) {
		close(fd);
		goto fail;
	}
	if (!(f->s = stream_new(f->chan))) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = stream_get_header(f->s, &purpose, &f->caps)) != 0) {
		snprintf(err, errlen, "%s: record 0 (header): %s", path,
			 r == KM_ERR_VERSION ? "written by a newer kvm-migrate (format version)" :
			 r == KM_ERR_BAD_MAGIC ? "not a kvm-migrate checkpoint" :
			 ckptfile__what(r));
		goto out;
	}
	if (purpose != STREAM_SNAPSHOT) {
		r = KM_ERR_CORRUPT;
		snprintf(err, errlen, "%s: a record stream, but not a checkpoint (purpose %d)",
			 path, (int)purpose);
		goto out;
	}
	f->record = 1;
	if ((r = stream_get(f->s, 64 * 1024, &type, &p, &len)) != 0 ||
	    (r = type == REC_CHECKPOINT ? 0 : KM_ERR_CORRUPT) != 0 ||
	    (r = ckptfile__parse_id(p, len, &f->id)) != 0) {
		snprintf(err, errlen, "%s: record 1 (identity): %s", path, ckptfile__what(r));
		goto out;
	}
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", path, km_strerror(r));
out:
	ckptfile_close(f);
	return r;
}

int ckptfile_index_init(struct ckptfile_index *ix)
{
	ix->b = buf_new(REC_MAX_PAYLOAD);
	return ix->b ? 0 : -ENOMEM;
}

void ckptfile_index_free(struct ckptfile_index *ix)
{
	buf_free(ix->b);
	ix->b = NULL;
}

int ckptfile_put_index(struct stream *s, struct ckptfile_index *ix)
{
	int r;

	if (!buf_len(ix->b))
		return 0;
	r = stream_put(s, REC_PAGE_INDEX, buf_ptr(ix->b), (uint32_t)buf_len(ix->b));
	buf_reset(ix->b);
	return r;
}

int ckptfile_index_add(struct buf *out, uint64_t rec_off, const uint8_t *p, size_t len)
{
	const uint8_t *data;
	enum page_kind kind;
	struct buf *view;
	uint64_t gpa;
	uint32_t dlen, n = 0;
	int r;

	/* The entries are counted first: the index of one record is never split. */
	if (!(view = buf_view(p, len)))
		return -ENOMEM;
	while ((r = pages_get(view, &gpa, &kind, &data, &dlen)) == 0)
		n++;
	buf_free(view);
	if (r != KM_ERR_END)
		return r;
	if (buf_room(out) < CKPT_INDEX_RECORD + (size_t)n * CKPT_INDEX_ENTRY)
		return KM_ERR_NO_SPACE;
	if ((r = buf_put_u64(out, rec_off)) != 0 || (r = buf_put_u32(out, n)) != 0)
		return r;
	if (!(view = buf_view(p, len)))
		return -ENOMEM;
	for (;;) {
		const uint8_t *entry = buf_ptr(view);

		if ((r = pages_get(view, &gpa, &kind, &data, &dlen)) != 0)
			break;
		if ((r = buf_put_u64(out, gpa | kind)) != 0 ||
		    (r = buf_put_u32(out, (uint32_t)(entry - p))) != 0)
			break;
	}
	buf_free(view);
	return r == KM_ERR_END ? 0 : r;
}

int ckptfile_put_pages(struct stream *s, struct ckptfile_index *ix, struct buf **payload)
{
	int r;

	/* Where the record will start: what the stream took so far. */
	r = ckptfile_index_add(ix->b, stream_bytes_out(s), buf_ptr(*payload), buf_len(*payload));
	if (r == KM_ERR_NO_SPACE) {
		/* Full: this part of the index goes out, the record's group starts the next. */
		if ((r = ckptfile_put_index(s, ix)) != 0)
			return r;
		r = ckptfile_index_add(ix->b, stream_bytes_out(s), buf_ptr(*payload),
				       buf_len(*payload));
	}
	if (r != 0)
		return r;
	return stream_put_owned(s, REC_PAGES, payload);
}

/* The record types a checkpoint file holds after its identity (ckptfile.h). */
static bool ckptfile__body_type(uint32_t type)
{
	return type == REC_VM_CONFIG || type == REC_PAGES || type == REC_VM_STATE ||
	       type == REC_VCPU_STATE || type == REC_PAGE_INDEX || type == REC_DISK_BLOCKS;
}

int ckptfile_next(struct ckptfile *f, uint32_t *type, const uint8_t **p, uint32_t *len,
		  char *err, size_t errlen)
{
	int r;

	if (f->ended)
		return KM_ERR_END;
	/* A newer writer's records this reader may skip (docs/format.md s.6): a loop, not recursion. */
	do {
		f->record++;
		r = stream_get(f->s, REC_MAX_PAYLOAD, type, p, len);
	} while (r == 0 && *type >= REC_TYPE_MAX && stream_skippable(f->s, *type));
	if (r == KM_ERR_END)
		r = KM_ERR_TRUNCATED;	/* the end of the file, but no REC_END */
	if (r == 0 && *type == REC_END) {
		if ((r = ckptfile_parse_end(*p, *len, &f->end)) == 0) {
			f->ended = true;
			return KM_ERR_END;
		}
	}
	/* Migration handshake records, a second header or identity: not a checkpoint's. */
	if (r == 0 && !ckptfile__body_type(*type))
		r = KM_ERR_CORRUPT;
	if (r != 0)
		snprintf(err, errlen, "%s: record %llu: %s", f->path, (unsigned long long)f->record,
			 ckptfile__what(r));
	return r;
}

void ckptfile_close(struct ckptfile *f)
{
	stream_free(f->s);
	chan_close(f->chan);
	f->s = NULL;
	f->chan = NULL;
}
