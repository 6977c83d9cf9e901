/*
 * A checkpoint file (docs/format.md s.7): a record stream of purpose
 * STREAM_SNAPSHOT, written and read through lib/stream over a file.
 *
 *   REC_HEADER       magic, version, caps (lz4), purpose 3
 *   REC_CHECKPOINT   its identity: CK_* fields
 *   REC_VM_CONFIG    the VM's configuration (state.h ST_CFG_*)
 *   REC_DISK_BLOCKS ...  a writable disk's 4 KiB blocks (vmrec.h), pre-copy and pause
 *   REC_PAGES ...    pages; a page may come more than once: the last wins
 *   REC_VM_STATE, REC_VCPU_STATE ...   the machine state at the capture
 *   REC_END          CKE_* fields; a file without it is incomplete
 * A base holds every page ever written; an increment the pages written
 * since its parent. Restoring applies a chain's files base first, pages
 * in file order, and the state of the last one.
 */
#ifndef KM_CKPTFILE_H
#define KM_CKPTFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chan.h"
#include "stream.h"

/* REC_CHECKPOINT fields. */
enum ckpt_tag {
	CK_ID = 1,		/* u64: its id in the store */
	CK_PARENT = 2,		/* u64: the checkpoint it was taken on (0 for a base) */
	CK_KIND = 3,		/* u64: 1 base, 2 increment (store.h enum store_kind) */
	CK_NAME = 4,		/* the VM's name */
};

/* REC_END fields of a checkpoint (1 and 2 mean what they mean in a migration's). */
enum ckpt_end_tag {
	CKE_CAPTURE_NS = 1,	/* u64: CLOCK_REALTIME of the capture */
	CKE_PAUSED = 2,		/* u64 0/1: the VM was paused (stop) when captured */
	CKE_PAUSE_NS = 3,	/* u64: how long the guest was paused for it */
	CKE_PAGES = 4,		/* u64: page entries in the file */
	CKE_MEM_HASH = 5,	/* u64, optional: memory__hash() at the capture */
	CKE_DISK_BLOCKS = 6,	/* u64, with a writable disk: REC_DISK_BLOCKS entries in the file */
};

/*
 * The page index of a file being written (REC_PAGE_INDEX, docs/format.md
 * s.9.1): for each REC_PAGES record, its offset in the file and, for each
 * of its entries in order, the entry's page address and kind and its
 * offset in the record's payload. A lazy restore reads it instead of
 * walking every entry of the file.
 */
struct ckptfile_index {
	struct buf *b;			/* the REC_PAGE_INDEX payload being built */
};
#define CKPT_INDEX_ENTRY	12	/* u64 gpa | kind, u32 offset in the payload */
#define CKPT_INDEX_RECORD	12	/* u64 record offset in the file, u32 entries */

int ckptfile_index_init(struct ckptfile_index *ix);
void ckptfile_index_free(struct ckptfile_index *ix);	/* NULL-safe on a zeroed struct */
/*
 * Puts a REC_PAGES payload (taking it, as stream_put_owned) and indexes
 * it; an index grown to a record's bound goes out first (a file may hold
 * several, each after the pages it describes).
 */
int ckptfile_put_pages(struct stream *s, struct ckptfile_index *ix, struct buf **payload);
/*
 * Appends to out the index group of a REC_PAGES payload p whose record
 * starts at rec_off in its file (the writer's, and kvm-snapshot verify's
 * to check a file's index against its page records). KM_ERR_NO_SPACE if
 * the group does not fit in out (nothing appended), KM_ERR_CORRUPT or
 * KM_ERR_TRUNCATED for a payload that is not page entries.
 */
int ckptfile_index_add(struct buf *out, uint64_t rec_off, const uint8_t *p, size_t len);
/* Puts what is left of the index: the last record before the state. */
int ckptfile_put_index(struct stream *s, struct ckptfile_index *ix);

struct ckptfile_id {
	uint64_t id, parent, kind;
	char name[64];
};

struct ckptfile_end {
	uint64_t capture_ns, pause_ns, pages, hash;
	uint64_t disk_blocks;		/* if has_disk */
	bool paused, has_hash, has_disk;
};

int ckptfile_put_identity(struct stream *s, uint64_t id, uint64_t parent, uint64_t kind,
			  const char *name);
int ckptfile_put_end(struct stream *s, const struct ckptfile_end *e);
int ckptfile_parse_end(const uint8_t *p, uint32_t len, struct ckptfile_end *e);

/* A checkpoint file open for reading. */
struct ckptfile {
	char path[4096];
	struct chan *chan;
	struct stream *s;
	uint64_t caps;			/* the header's */
	struct ckptfile_id id;
	uint64_t record;		/* index of the last record read (the header is 0) */
	bool ended;			/* REC_END was read */
	struct ckptfile_end end;
};

/*
 * Opens path and reads its header and identity. Errors name the file and
 * the record: KM_ERR_BAD_MAGIC, KM_ERR_VERSION (a newer format),
 * KM_ERR_CORRUPT, KM_ERR_TRUNCATED, -errno.
 */
int ckptfile_open(const char *path, struct ckptfile *f, char *err, size_t errlen);
/*
 * The next record (payload valid until the next call). KM_ERR_END after
 * REC_END (whose fields are in f->end); a file that ends before it is
 * KM_ERR_TRUNCATED; any damage names the file and the record.
 */
int ckptfile_next(struct ckptfile *f, uint32_t *type, const uint8_t **p, uint32_t *len,
		  char *err, size_t errlen);
void ckptfile_close(struct ckptfile *f);	/* NULL-safe on a zeroed struct */

#endif
