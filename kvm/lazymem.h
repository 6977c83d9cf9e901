/*
 * Guest RAM whose content arrives after the VM has started (a lazy
 * restore): the mapping of guest RAM is registered with userfaultfd in
 * missing-page mode, and one thread brings a page in from a source when
 * it is first touched, by a vCPU (KVM's page faults go through the same
 * mapping) or by the VMM itself (a checkpoint, a migration or a memory
 * hash reading it), and, in prefetch mode, brings in the others in page
 * order meanwhile. A page is placed with UFFDIO_COPY, which refuses a
 * page that is already there: a page is never written twice, never over
 * the guest's newer write.
 *
 * While pages are absent, memory__next_data counts them as written
 * (mem->absent): a base checkpoint, a migration and a memory hash include
 * them, and reading them brings them in. The absent set only shrinks.
 *
 * When the last absent page is in, the range is unregistered and the
 * thread ends: guest RAM is plain memory again. If the source fails (a
 * damaged record), the VM cannot go on with part of its memory missing,
 * and nothing may save it: the process exits at once (as a crash would,
 * which the checkpoint store survives), the reason in the log.
 */
#ifndef KM_LAZYMEM_H
#define KM_LAZYMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bitmap.h"

struct kvm;
struct lazymem;

/* Where absent pages come from. */
struct lazy_source {
	/* Writes page n's content into page (4096 bytes); 0, or an error and why. */
	int (*read)(void *ctx, uint64_t n, uint8_t *page, char *why, size_t whylen);
	void (*free)(void *ctx);	/* when the last page is in or the VM ends; may be NULL */
	void *ctx;
};

struct lazymem_stats {
	uint64_t absent;		/* pages still to bring in */
	uint64_t total;			/* pages absent at the start */
	uint64_t faults;		/* absent pages brought in because they were touched */
	uint64_t prefetched;		/* absent pages brought in by the prefetch */
	uint64_t zero_faults;		/* never-written pages touched (filled with zeros) */
	uint64_t max_fault_ns;		/* the longest a touched page took to serve */
	uint64_t done_ns;		/* from start until the last page was in; 0 until then */
	bool prefetch, active;
};

/*
 * Starts bringing kvm's absent pages (the set bits of absent, which this
 * takes over and frees) in from src (which it frees too, also on failure): only when touched, or also in page
 * order if prefetch. Before the vCPUs start. The reason in err (no
 * userfaultfd for an unprivileged user, a kernel without shared-memory
 * support for it).
 */
int lazymem__start(struct kvm *kvm, struct bitmap *absent, const struct lazy_source *src,
		   bool prefetch, char *err, size_t errlen);
/* What it did so far; false if kvm never had a lazy restore. */
bool lazymem__stats(struct kvm *kvm, struct lazymem_stats *out);
/* Stops the thread and unregisters guest RAM; NULL-safe, idempotent. */
void lazymem__stop(struct kvm *kvm);

#endif
