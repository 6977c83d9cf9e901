/*
 * The VM as records (DESIGN.md s.4): turning a VM's pages into REC_PAGES
 * payloads, and making a VM from records and applying pages and state to
 * it. Migration (migrate/) and checkpoints (snapshot/) are thin users of
 * this layer: they decide which pages go where and when, not how a page or
 * a vCPU becomes bytes and back. The machine state itself (config, VM and
 * vCPU records) is state.h's.
 *
 * Pages are numbered by memory (memory__page_of / memory__gpa_of): page n
 * is at byte n * 4096 of the guest RAM memfd.
 */
#ifndef KM_VMREC_H
#define KM_VMREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "bitmap.h"
#include "buf.h"
#include "pages.h"
#include "kvm/state.h"

struct kvm;
struct kvm_config;

/* ---- Capture: pages into REC_PAGES payloads ---------------------------- */

#define VMREC_BATCH	(1U << 20)	/* a REC_PAGES payload: ~256 raw pages */

/*
 * Receives a full batch (a REC_PAGES payload) and what is in it. It may
 * take the buffer (replacing *payload by an empty one of the same cap,
 * as stream_put_owned does) or copy it and empty it.
 */
typedef int (*vmrec_batch_fn)(void *ctx, struct buf **payload, const struct pages_stats *st);

struct vmrec_enc {
	struct kvm *kvm;
	bool compress;			/* try lz4 (adaptively) */
	struct buf *payload;		/* the batch being filled */
	struct pages_stats acc;		/* what is in it */
	unsigned int lz4_misses;	/* pages in a row lz4 could not shrink */
	unsigned int lz4_probe;
	vmrec_batch_fn batch;
	void *ctx;
};

int vmrec_enc_init(struct vmrec_enc *e, struct kvm *kvm, bool compress, vmrec_batch_fn batch,
		   void *ctx);
void vmrec_enc_free(struct vmrec_enc *e);	/* NULL-safe on a zeroed struct */
/*
 * Adds page n, read from page (4096 bytes: a copy taken earlier) or, if
 * page is NULL, from guest memory as it is now. Hands the batch over when
 * it is full.
 */
int vmrec_enc_page(struct vmrec_enc *e, uint64_t n, const uint8_t *page);
/* Hands over what the batch holds, if anything. */
int vmrec_enc_flush(struct vmrec_enc *e);
/*
 * Adds the pages of set, from guest memory. never_touched: skip the pages
 * that were never written (holes of the memfd: they read as zero, and
 * reading them would allocate them), counted in *skipped. tick (if set)
 * is called every 256 pages, and a non-zero return stops the walk (a
 * cancel). *sent: pages added. Does not flush.
 */
int vmrec_enc_set(struct vmrec_enc *e, const struct bitmap *set, bool never_touched,
		  int (*tick)(void *ctx), uint64_t *sent, uint64_t *skipped);

/* ---- The disk's blocks: REC_DISK_BLOCKS payloads (vmrec-disk.c) ------ */

/*
 * A REC_DISK_BLOCKS payload (docs/format.md s.9.1) is u64 the disk's size
 * in bytes, then entries of the page codec (lib/pages.h) whose address is
 * a block's byte offset in the disk (blocks of VIRTIO_BLK_BLOCK = 4 KiB,
 * below the size; the part of a last short block past the end is zero and
 * ignored).
 */
struct vmrec_disk_enc {
	uint64_t size;			/* the disk's, in bytes */
	bool compress;
	struct buf *payload;		/* the batch being filled (the size first) */
	uint64_t in_batch, blocks;	/* entries in the batch, handed over */
	int (*batch)(void *ctx, const uint8_t *p, uint32_t len);	/* puts a full payload */
	void *ctx;
};
int vmrec_disk_enc_init(struct vmrec_disk_enc *e, uint64_t size, bool compress,
			int (*batch)(void *ctx, const uint8_t *p, uint32_t len), void *ctx);
void vmrec_disk_enc_free(struct vmrec_disk_enc *e);	/* NULL-safe on a zeroed struct */
/* Adds block n (4096 bytes at data); hands the batch over when it is full. */
int vmrec_disk_enc_block(struct vmrec_disk_enc *e, uint64_t n, const uint8_t *data);
/* Hands over what the batch holds, if anything. */
int vmrec_disk_enc_flush(struct vmrec_disk_enc *e);

/*
 * Where a block read from a payload goes: byte offset off, 4096 bytes at
 * data, or NULL for a block of zeros. A non-zero return stops the walk.
 */
typedef int (*vmrec_disk_put_fn)(void *ctx, uint64_t off, const uint8_t *data);
/*
 * Walks a REC_DISK_BLOCKS payload: every entry checked (kind, LZ4 only if
 * lz4_ok, decompressing to 4096 bytes exactly, offset aligned and below
 * the size) before it goes to put (if not NULL). size: the disk the
 * payload must be for, or 0 for any (then *size_out says which, if not
 * NULL). *blocks (if not NULL): entries walked. KM_ERR_CORRUPT or
 * KM_ERR_TRUNCATED for a bad payload, KM_ERR_INVALID for another disk's
 * size, or put's error; the reason in why.
 */
int vmrec_disk_walk(const uint8_t *p, uint32_t len, uint64_t size, bool lz4_ok,
		    vmrec_disk_put_fn put, void *ctx, uint64_t *size_out, uint64_t *blocks,
		    char *why, size_t whylen);

/* ---- Apply: a VM from records ------------------------------------------ */

#define VMREC_RUN	256	/* pages per pwritev at most */

/*
 * Parses a REC_VM_CONFIG payload into cfg (mem_size, nr_vcpus, irqchip;
 * the rest of cfg is the caller's) and its name into name, refusing more
 * memory than max_mem. The reason in why.
 */
int vmrec_parse_config(const uint8_t *p, uint32_t len, struct kvm_config *cfg, char *name,
		       size_t namelen, uint64_t max_mem, char *why, size_t whylen);
/*
 * Creates the VM cfg describes (as parsed above) and checks that this
 * host can run the CPUID of the config payload p. The reason in why.
 */
int vmrec_create(struct kvm_config *cfg, const uint8_t *p, uint32_t len, struct kvm **out,
		 char *why, size_t whylen);

struct vmrec_loader {
	struct kvm *kvm;
	bool lz4_ok;			/* PAGE_LZ4 entries are allowed */
	struct bitmap written;		/* pages that hold data here: a zero page must clear them */
	struct state_loader state;
	uint64_t pages;			/* page entries applied */
	/* The pending run of consecutive pages, written with one pwritev. */
	struct iovec iov[VMREC_RUN];
	unsigned int n;
	uint64_t first;
	uint8_t *scratch;		/* VMREC_RUN pages for expanded lz4 pages */
	unsigned int used;
	char why[200];			/* why the last call failed */
};

/*
 * Pages arriving for kvm's memory (never run yet, or paused) are written
 * through the memfd with pwritev, in runs of consecutive pages, instead
 * of being copied through the mapping: a full-page write to shmem
 * allocates the page without zeroing it first and without a page fault
 * per page (512 MiB take 0.21 s this way against 0.33 s by the mapping).
 * A zero page for memory never written here is skipped: it reads as zero
 * already, and stays unallocated.
 */
int vmrec_load_init(struct vmrec_loader *ld, struct kvm *kvm, bool lz4_ok);
void vmrec_load_free(struct vmrec_loader *ld);	/* NULL-safe on a zeroed struct */
/* Applies a REC_PAGES payload (written before it returns). */
int vmrec_load_pages(struct vmrec_loader *ld, const uint8_t *p, uint32_t len);
/*
 * Applies a state record (REC_VM_CONFIG, REC_VM_STATE, REC_VCPU_STATE) as
 * it arrives; other types are KM_ERR_INVALID.
 */
int vmrec_load_state(struct vmrec_loader *ld, uint32_t type, const uint8_t *p, uint32_t len);
/* After the last record: every vCPU got its state (else KM_ERR_TRUNCATED). */
int vmrec_load_done(struct vmrec_loader *ld);

#endif
