/*
 * Restoring a checkpoint into a new VM (kvm-run --restore DIR[@ID]): the
 * chain that leads to it is applied base first, every file's pages in
 * file order (the last copy of a page wins), then the machine state of
 * the checkpoint itself. Eager: every page is in guest memory before the
 * VM may run.
 */
#ifndef KM_RESTORE_H
#define KM_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "snapshot/ckptfile.h"

struct kvm;
struct kvm_config;
struct store;
struct store_entry;

struct restore_info {
	uint64_t id;		/* the checkpoint restored */
	unsigned int files;	/* files of its chain applied */
	uint64_t pages;		/* page entries applied */
	uint64_t capture_ns;	/* CLOCK_REALTIME when it was taken */
	bool paused;		/* the VM was paused (stop) when it was taken */
	bool has_hash;
	uint64_t mem_hash;	/* memory__hash() taken then, if it was asked for */
	/* A lazy restore: */
	uint64_t absent;	/* pages left to bring in when the VM may start */
	unsigned int indexed;	/* files read through their page index (the others walked) */
	uint64_t index_ns;	/* from the call until then: chain walked, VM made, state loaded */
	uint64_t create_ns;	/* of which: making the VM (KVM_CREATE_VM, memory, vCPUs) */
	uint64_t state_ns;	/* of which: loading the machine state */
};

/*
 * The disk (docs/kvm-snapshot.1 "Disks"): a writable disk's content is in
 * the checkpoints, and a restore writes it back, base first, so that the
 * disk is the one of the checkpoint's instant. Into the image named by
 * the checkpoint, once its lock is taken (a running VM's disk is never
 * written: -EBUSY before anything is), or, with disk_to, into that file:
 * made with the disk's size if it does not exist, else it must have that
 * size; the restored VM then uses it as its disk. A read-only disk is not
 * in the checkpoints: it is opened where it is.
 *
 * spec: DIR (the newest checkpoint: the latest capture time, then the
 * highest id) or DIR@ID. cfg supplies what is the host's to choose (name,
 * console, dirty tracking); memory size, vCPUs and irqchip come from the
 * checkpoint, and the name too if cfg->name is NULL (name, namelen hold
 * it). The new VM in *out, not started. The reason in err, naming the
 * file and record of any damage.
 */
int restore__vm(const char *spec, const char *disk_to, struct kvm_config *cfg, char *name,
		size_t namelen, struct kvm **out, struct restore_info *info, char *err,
		size_t errlen);

/*
 * The same, lazily (kvm-run --restore DIR --lazy): the VM may start once
 * the chain's files are mapped and walked (record headers and page
 * entries, no page copied) and the state is loaded; its pages come in
 * from the files when first touched, and in page order meanwhile if
 * prefetch (kvm/lazymem.h). The files' page records are checksummed when
 * first used, not before: a damaged one ends the VM then (kvm-snapshot
 * verify first, or restore eagerly, to learn it up front). Needs
 * userfaultfd for kernel faults (root, or vm.unprivileged_userfaultfd=1).
 */
int restore__vm_lazy(const char *spec, const char *disk_to, bool prefetch,
		     struct kvm_config *cfg, char *name, size_t namelen, struct kvm **out,
		     struct restore_info *info, char *err, size_t errlen);

/*
 * A checkpoint applied to memory alone, without /dev/kvm: what its chain
 * puts into guest RAM (kvm->mem of a struct kvm that has nothing else),
 * the state records of the checkpoint itself as they are in its file
 * (framed, REC_VM_CONFIG first), its identity and end. For compaction
 * and for the memory hash of a checkpoint.
 */
struct restore_image {
	struct kvm *kvm;		/* memory only (memory__init_image) */
	int disk_fd;			/* a writable disk's content (a memfd), if has_disk */
	uint64_t disk_size;
	bool has_disk;
	struct buf *state;		/* the checkpoint's state records, framed */
	uint64_t id, time_ns, pause_ns;
	struct ckptfile_end end;
	char name[64];
	unsigned int files;
};
int restore__image(struct store *st, uint64_t id, struct restore_image *img, char *err,
		   size_t errlen);
void restore__image_free(struct restore_image *img);	/* NULL-safe on a zeroed struct */

/*
 * What every reader of a store needs first: the listed checkpoints (e, n)
 * and the chain that restores checkpoint id, base first (ids, len); id 0
 * means the newest. The reason in err (no checkpoint, not listed, a broken
 * chain). Freed with restore__chain_free.
 */
struct restore_chain {
	struct store_entry *e;
	size_t n;
	uint64_t *ids;
	size_t len;
	uint64_t id;
};
int restore__chain(struct store *st, uint64_t id, struct restore_chain *ch, char *err,
		   size_t errlen);
void restore__chain_free(struct restore_chain *ch);	/* NULL-safe on a zeroed struct */

/* The checkpoint whose state is the newest: the latest capture, then the highest id (0: none). */
uint64_t restore__newest(const struct store_entry *e, size_t n);

/* Splits DIR[@ID] at its last '@' followed by digits only: 0, or KM_ERR_INVALID. */
int restore__parse_spec(const char *spec, char *dir, size_t dirlen, uint64_t *id);

#endif
