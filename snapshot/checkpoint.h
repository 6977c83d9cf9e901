/*
 * Checkpoints of a running VM (DESIGN.md s.9, docs/kvm-snapshot.1): one
 * thread in the VM's process takes them, periodically or when asked, into
 * a store (store.h). The first is a base (every page ever written); each
 * later one holds the pages dirtied since the previous one that was
 * committed, plus the whole machine state; a new base after chain_max
 * increments or when asked.
 *
 * A writable disk goes in too, in 4 KiB blocks (REC_DISK_BLOCKS): its
 * device keeps a dirty-block tracker per line (virtio_blk__track); a base
 * copies every block, an increment the blocks written since; the blocks
 * are pre-copied first, before the pages, and the last ones (at most
 * CKPT_PAUSE_BLOCKS) are copied in the same pause as the last pages.
 *
 * Timeline of one checkpoint:
 *   begin     a temporary file in the store; header, identity, config
 *   pre-copy  while the guest runs: pages to save (a base: every page ever
 *             written; else the dirty set) are written from guest memory,
 *             then the pages dirtied meanwhile, round after round until
 *             they are few (CKPT_PAUSE_PAGES); a guest that outruns it
 *             is throttled a step more each round that does not halve
 *             them, for up to CKPT_MAX_ROUNDS rounds
 *   capture   pause (KVM_HOLD_CHECKPOINT), read the last dirty pages and
 *             copy them into memory, capture the state, resume: the only
 *             time the guest feels, measured and reported
 *   write     the copies, the state and REC_END go out while the guest
 *             runs; commit (fsync, rename, directory fsync, manifest)
 * A page the guest wrote while the pre-copy read it is dirty again, so it
 * is copied again at the capture and written later in the file: a reader
 * applies records in order, and the last copy of a page wins.
 *
 * Nothing is lost when a checkpoint fails (full disk, I/O error, a killed
 * writer is the same as a crash): every page read from the dirty tracker
 * since the last committed checkpoint stays owed, and the next checkpoint
 * (an increment on the last committed one) writes them all.
 *
 * Each outcome (every attempt of the VM's checkpoints, counted in taken or
 * failed, and every live snapshot) is also a CHECKPOINT event on the VM's
 * control socket (control__event, docs/control.md), sent before the
 * checkpoint or checkpoint-save command that asked for it is answered.
 */
#ifndef KM_CHECKPOINT_H
#define KM_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct kvm;
struct control_cmd;

#define CKPT_DEFAULT_CHAIN	32	/* increments before a new base */
#define CKPT_PAUSE_PAGES	2048	/* pre-copy until at most this many are left */
#define CKPT_MAX_ROUNDS		16	/* pre-copy rounds at most */
#define CKPT_PAUSE_BLOCKS	256	/* the disk's pre-copy: until at most this many 4 KiB blocks are left */

struct checkpoint_params {
	char dir[4096];
	uint64_t every_ms;		/* 0: only when asked */
	unsigned int keep;		/* retention: checkpoints kept restorable (0: all) */
	unsigned int chain_max;		/* increments before a new base */
	bool compress;			/* lz4 where it helps */
};

/* What the last checkpoint did, and totals (query-checkpoints). */
struct checkpoint_stats {
	uint64_t taken, failed;
	uint64_t last_id;		/* 0: none committed yet */
	uint64_t last_pause_ns, max_pause_ns;
	uint64_t last_pages, last_bytes, last_ns;	/* last_ns: begin to commit */
	uint64_t owed_pages;		/* pages the next checkpoint must write */
	uint64_t every_ms;
	bool periodic;
	char last_error[256];
};

/*
 * Opens (creating) the store of p->dir and starts the checkpoint thread;
 * periodic checkpoints start at once if p->every_ms. Once per VM, before
 * or after it starts. The reason in err.
 */
int checkpoint__setup(struct kvm *kvm, const struct checkpoint_params *p, char *err,
		      size_t errlen);
/* One checkpoint's outcome. */
struct checkpoint_result {
	uint64_t id, parent, pause_ns, pages, bytes;	/* parent: 0 for a base */
	uint64_t ns;			/* from start to commit */
	uint64_t mem_hash;		/* if has_hash */
	uint64_t pause_pages;		/* pages copied in the pause */
	uint64_t disk_blocks;		/* a writable disk's 4 KiB blocks in the file */
	uint64_t pause_blocks;		/* of which copied in the pause */
	unsigned int rounds;		/* pre-copy rounds */
	unsigned int throttle_pct;	/* the most the guest was throttled (0: never) */
	bool full, has_hash;
};

/*
 * Takes a checkpoint now and waits for its outcome: 0 and what it did, or
 * the error with the reason in err. full: a new base. hash: also record a
 * hash of the whole guest memory taken at the capture (memory__hash; it
 * lengthens the pause: for tests and checks).
 */
int checkpoint__now(struct kvm *kvm, bool full, bool hash, struct checkpoint_result *res,
		    char *err, size_t errlen);
/*
 * A live snapshot (kvm-migrate VM file:DIR): one base checkpoint of kvm
 * into the store DIR (made if need be), pre-copied while the VM runs, with
 * a dirty subscriber of its own: the VM's own checkpoints, if any, and a
 * migration go on undisturbed. Waits for the outcome. Restored with
 * kvm-run --restore DIR.
 */
int checkpoint__save_to(struct kvm *kvm, const char *dir, bool compress,
			struct checkpoint_result *res, char *err, size_t errlen);
/* A writable disk's blocks (disk-blocks, pause-blocks) into a reply or event o. */
void checkpoint__disk_json(struct kvm *kvm, json_t *o, const struct checkpoint_result *res);
/* Changes the period (0: stop periodic checkpoints) while the VM runs. */
int checkpoint__set_period(struct kvm *kvm, uint64_t every_ms);
int checkpoint__get_stats(struct kvm *kvm, struct checkpoint_stats *out);
/* Stops the thread (a checkpoint under way is finished first). NULL-safe on a VM without. */
void checkpoint__shutdown(struct kvm *kvm);

/* The control commands: checkpoint, query-checkpoints, checkpoint-set. */
const struct control_cmd *checkpoint__control_table(struct kvm *kvm);

#endif
