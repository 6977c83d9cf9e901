/*
 * What the eager restore (restore.c) and the lazy one (restore-lazy.c)
 * share: making the VM from the first file's config, and taking the
 * restored checkpoint's state records.
 */
#ifndef KM_RESTORE_INT_H
#define KM_RESTORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvm/vmrec.h"
#include "snapshot/ckptfile.h"
#include "snapshot/restore.h"

struct store;

struct restore {
	struct restore_image *img;	/* image mode: memory only, state kept as records */
	struct kvm_config *cfg;
	char *name;
	size_t namelen;
	struct kvm *kvm;
	struct vmrec_loader ld;
	bool loader;
	struct restore_info *info;
	bool lz4_ok;			/* the file being applied may hold lz4 entries */
	const char *disk_to;		/* --restore-disk: the disk goes there, not to its image */
	bool disk_made;			/* ... a file this restore made (removed if it fails) */
	char *err;
	size_t errlen;
};

/* What a restore does with a REC_PAGES payload; the reason in rs->ld.why. */
typedef int (*restore_pages_fn)(struct restore *rs, void *ctx, const uint8_t *p, uint32_t len);
/*
 * One record of a chain's file after its identity (and before its end):
 * the first file's config makes the VM (or image), the state records of
 * the last one are loaded (or kept), pages go to pages(rs, ctx, ...);
 * anything else, or anything before the config, is refused. 0, or the
 * error with the reason in rs->ld.why.
 */
int restore__record(struct restore *rs, uint32_t type, const uint8_t *p, uint32_t len,
		    bool first, bool last, restore_pages_fn pages, void *ctx);

/*
 * DIR[@ID] parsed, its store opened and the chain of the checkpoint found;
 * info zeroed but for its id. The reason in err; *st to close either way.
 */
int restore__open_spec(const char *spec, struct store **st, struct restore_chain *ch,
			char *dir, size_t dirlen, struct restore_info *info, char *err,
			size_t errlen);
/* A restore's end: the loader, the VM if it was not handed over (rs->kvm), the chain, the store. */
void restore__done(struct restore *rs, struct restore_chain *ch, struct store *st);
/*
 * A file's end: a VM with a writable disk needs every file of its chain to
 * hold the disk's blocks. 0, or KM_ERR_CORRUPT with the reason in rs->ld.why.
 */
int restore__file_end(struct restore *rs, const struct ckptfile_end *end);
/*
 * After the last file and all else that can fail: the restored disk
 * written through to its storage and put in the image's place (it was
 * staged beside it, virtio_blk__stage). 0 or -errno.
 */
int restore__disk_done(struct restore *rs);
/* The restored checkpoint's end record, into info. */
void restore__info_end(struct restore_info *info, const struct ckptfile_end *end);

#endif
