/*
 * A virtio-blk disk (virtio 1.x s.5.2) on the virtio-mmio transport
 * (virtio-mmio.h), backed by a raw image file: what a Linux guest's
 * virtio_blk driver needs to use it as /dev/vda. One request queue of
 * VIRTIO_BLK_QUEUE_MAX entries; features VERSION_1, FLUSH, SEG_MAX, and RO
 * for a read-only disk. Requests IN, OUT, FLUSH (fdatasync) and GET_ID
 * (the image's file name, at most 20 bytes); any other type answers
 * VIRTIO_BLK_S_UNSUPP, and a request reaching past the disk's end, a
 * write to a read-only disk or a failed read, write or sync answers
 * VIRTIO_BLK_S_IOERR.
 *
 * Requests are done synchronously, on the vCPU thread that writes the
 * queue's QueueNotify, by pread/pwrite on the image straight into or out
 * of guest memory. So a VM paused by kvm__pause (every vCPU out of
 * KVM_RUN and out of its exit handlers) never has a request in flight:
 * that is how in-flight requests are drained before a migration's
 * switchover. The data the device writes into guest memory (read sectors,
 * status bytes, used-ring entries) is marked dirty through
 * mem->dirty (dirty__mark), so a migration sends those pages again.
 *
 * Where the guest finds it: x86/linux.h (MMIO window, GSI) and the DSDT's
 * device VBLK (x86/acpi.c), present only when the VM has a disk.
 *
 * The image is locked with an open file description lock (F_OFD_SETLK,
 * as QEMU does): a write lock on the whole file for a read-write disk, a
 * read lock for a read-only one. Two VMs never write one image at once,
 * whether in one process or two; the lock goes with the descriptor.
 */
#ifndef KM_VIRTIO_BLK_H
#define KM_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "bitmap.h"
#include "buf.h"

struct kvm;
struct virtio_blk;

#define VIRTIO_BLK_QUEUE_MAX	256
#define VIRTIO_BLK_SECTOR	512
#define VIRTIO_BLK_ID_BYTES	20
/*
 * A checkpoint saves the disk in blocks of 4 KiB (the size of a page, so
 * that blocks travel in the page codec, lib/pages.h): the last block of a
 * disk whose size is not a multiple of it is short.
 */
#define VIRTIO_BLK_BLOCK	4096U
#define VIRTIO_BLK_TRACKERS	4	/* dirty-block trackers at once (checkpoint lines) */

/* virtio_blk__open flags. */
#define VIRTIO_BLK_RO		(1U << 0)	/* read-only: opened O_RDONLY, feature RO, a read lock */
#define VIRTIO_BLK_NOLOCK	(1U << 1)	/* do not lock yet: virtio_blk__lock does, later */

/* What the disk did, for query-stats and tests. */
struct virtio_blk_stats {
	uint64_t reads, writes, flushes, get_ids;	/* requests done, by type */
	uint64_t unsupported, errors;			/* answered UNSUPP, IOERR */
	uint64_t bytes_read, bytes_written;
};

/*
 * Opens the raw image at path (O_CLOEXEC; O_RDWR, or O_RDONLY with
 * VIRTIO_BLK_RO) and, unless VIRTIO_BLK_NOLOCK, locks it. The disk's size
 * is the file's, which must be a non-zero multiple of 512 bytes. No VM is
 * needed yet (virtio_blk__attach), so a bad disk is refused before one
 * is made. On failure the reason is logged, naming the file: -errno of
 * open (e.g. -ENOENT), KM_ERR_INVALID (size), -EBUSY (another VM holds
 * the lock). *out is the caller's (virtio_blk__destroy).
 */
int virtio_blk__open(const char *path, unsigned int flags, struct virtio_blk **out);

/*
 * Makes b the disk of kvm (kvm->blk, destroyed by kvm__destroy): before
 * linux__boot, which declares it in the ACPI tables. 0 or KM_ERR_STATE if
 * kvm has a disk already.
 */
int virtio_blk__attach(struct virtio_blk *b, struct kvm *kvm);

/* Closes the image (which drops its lock) and frees. NULL-safe. After the vCPUs are gone. */
void virtio_blk__destroy(struct virtio_blk *b);

/*
 * Takes the image's lock (what virtio_blk__open did without
 * VIRTIO_BLK_NOLOCK), e.g. at a migration's switchover once the source
 * has let go. 0 (also if held already), or -EBUSY if another VM holds
 * it (logged), or -errno.
 */
int virtio_blk__lock(struct virtio_blk *b);
/*
 * Writes what the image holds through to its storage (fdatasync; nothing
 * for a read-only disk): a migration's source, before it lets go, so a
 * destination on another host of the shared storage reads it all. 0 or
 * -errno (logged).
 */
int virtio_blk__sync(struct virtio_blk *b);
/* Gives up the image's lock, keeping it open (a migration's source, at switchover). */
void virtio_blk__unlock(struct virtio_blk *b);

/* The image's path as given to virtio_blk__open (owned by b). */
const char *virtio_blk__path(const struct virtio_blk *b);
/* The disk's size in bytes. */
uint64_t virtio_blk__size(const struct virtio_blk *b);
/* Whether the disk is read-only. */
bool virtio_blk__ro(const struct virtio_blk *b);
/* Copies the counters (any thread). */
void virtio_blk__stats(const struct virtio_blk *b, struct virtio_blk_stats *out);

/* Whether gpa is in the disk's MMIO window. */
bool virtio_blk__owns(const struct virtio_blk *b, uint64_t gpa);
/* A vCPU's MMIO access of len bytes at gpa (virtio_blk__owns): read fills data. */
void virtio_blk__mmio(struct virtio_blk *b, uint64_t gpa, bool is_write, uint8_t *data,
		      uint32_t len);

/* ---- Checkpoints: dirty blocks, and the image's content (virtio-blk-track.c) ---- */

/* The disk's blocks of VIRTIO_BLK_BLOCK bytes (the last one may be short). */
uint64_t virtio_blk__nr_blocks(const struct virtio_blk *b);
/*
 * Starts a dirty-block tracker: a bitmap of the blocks the guest wrote
 * (OUT requests, marked once the write is done) since the tracker's last
 * read; it starts with every block set. Returns its id (>= 0) or
 * -EBUSY when VIRTIO_BLK_TRACKERS run already, -ENOMEM.
 */
int virtio_blk__track(struct virtio_blk *b);
/* Stops tracker id. */
void virtio_blk__untrack(struct virtio_blk *b, int id);
/*
 * ORs tracker id's blocks into out (virtio_blk__nr_blocks bits) and
 * clears them: each write is reported by exactly one read. Any thread.
 */
void virtio_blk__dirty_read(struct virtio_blk *b, int id, struct bitmap *out);
/*
 * Reads n blocks from block first into dst (n * VIRTIO_BLK_BLOCK bytes;
 * past the end of the disk, zeros). 0 or -errno (logged).
 */
int virtio_blk__read_blocks(struct virtio_blk *b, uint64_t first, uint64_t n, uint8_t *dst);
/*
 * Writes one block of the image at byte off (a multiple of
 * VIRTIO_BLK_BLOCK, inside the disk) from data, VIRTIO_BLK_BLOCK bytes of
 * which those past the disk's end are left out; data NULL: a block of
 * zeros (a hole punched where the file system can). For a restore, before
 * the VM runs, with the image locked. 0 or -errno (logged),
 * KM_ERR_INVALID for an offset out of range or a read-only disk.
 */
int virtio_blk__write_block(struct virtio_blk *b, uint64_t off, const uint8_t *data);
/*
 * A restore that fails leaves the image as it was. virtio_blk__stage (the
 * image locked, before the restore's first write) makes a new file beside
 * the image ("DIR/.NAME.restore-XXXXXX", the image's size, mode and, where
 * we may, owner; locked), and from then on every read and write of b is of
 * that file; virtio_blk__stage_commit, once the whole restore has
 * succeeded, writes it through to its storage and renames it over the
 * image (through a symlink, over the file it names), then syncs the
 * directory; b goes on with it, locked, under the image's path. A staged
 * file never committed is removed by virtio_blk__stage_abort (also by
 * virtio_blk__destroy), and b is back on the image, untouched; one left by
 * a restore that was killed is removed by the next virtio_blk__stage of
 * that image (not locked by anyone: its restore is gone). The price:
 * room for a second copy of the disk's written blocks while the restore
 * runs, and the image is a new file (other hard links to it keep the old
 * content). A disk that is not a regular file (a block device) is not
 * staged: 0, and a restore writes it in place. Each 0 or -errno (logged);
 * virtio_blk__stage KM_ERR_STATE for a read-only or unlocked disk, or one
 * staged already; virtio_blk__stage_commit without a stage only syncs.
 */
int virtio_blk__stage(struct virtio_blk *b);
int virtio_blk__stage_commit(struct virtio_blk *b);
void virtio_blk__stage_abort(struct virtio_blk *b);

/*
 * Appends to out a versioned, self-describing blob of all the disk's
 * guest-visible state: a field list (lib/record.h: u32 tag, u32 length,
 * bytes) with a magic and a version, the disk's size and offered
 * features, the transport's status, feature selectors and acked
 * features, queue selector, interrupt status, config generation and IRQ
 * level, and per queue one nested field list (size, ready, the three
 * area addresses, last_avail_idx, used idx). The image's content is not
 * in it (shared storage). Call with the VM paused (no vCPU in the
 * device). 0 or out's errors (KM_ERR_NO_SPACE, -ENOMEM).
 */
int virtio_blk__save(const struct virtio_blk *b, struct buf *out);

/*
 * Replaces b's guest-visible state with a blob from virtio_blk__save,
 * all or nothing: every field is checked first (magic, version, known
 * tags each once, all present; status and selector values in range;
 * with FEATURES_OK, acked features offered and VERSION_1 among them; a
 * ready queue's size a power of two <= the maximum and its areas aligned
 * and inside the VM's guest memory; the IRQ level agreeing with the
 * interrupt status). What the driver wrote to a queue not yet ready, or
 * acked before FEATURES_OK, may be anything, as it may on the source: it
 * is checked when used. KM_ERR_VERSION for
 * another version, KM_ERR_CORRUPT for anything else wrong, KM_ERR_INVALID
 * if the blob describes another disk (size, read-only or not) than b.
 * Then sets the IRQ line to the saved level (raised again if it was
 * high). The VM paused, b attached to it.
 */
int virtio_blk__load(struct virtio_blk *b, const uint8_t *p, uint32_t len);

#endif
