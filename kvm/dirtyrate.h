/*
 * Dirty-rate measurement of a running VM, started and then queried (as
 * QEMU's calc-dirty-rate / query-dirty-rate), never blocking the control
 * socket: a thread measures for a duration, interval by interval.
 *
 *   bitmap  exact: a dirty subscriber of its own (dirty.h) read at every
 *           interval's end: the pages written in it, each counted once,
 *           whatever other consumers (a migration, checkpoints) do; and,
 *           asked, the writable working set against the window (below)
 *   ring    with the dirty-ring backend (kvm-run --dirty-log ring): as
 *           bitmap, plus each vCPU's own count, the entries its ring
 *           gave in the interval (a page two vCPUs wrote counts for both)
 *   sample  an estimate that costs the guest nothing (no write
 *           protection, no dirty logging): a fixed random sample of guest
 *           pages is hashed at an interval's start and again at its end;
 *           the share that changed, times the guest's pages, estimates the
 *           pages written in it. Pages are read with pread from the memfd,
 *           so that a never-written page stays unallocated. It misses a
 *           page written back to the same content, and its error grows as
 *           the sample shrinks or the written set gets small.
 *
 * Rates are pages per second and MB per second (10^6 bytes, of 4 KiB pages).
 */
#ifndef KM_DIRTYRATE_H
#define KM_DIRTYRATE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct kvm;

enum dirtyrate_mode { DIRTYRATE_BITMAP, DIRTYRATE_SAMPLE, DIRTYRATE_RING };

#define DIRTYRATE_MAX_INTERVALS	6000	/* kept per measurement */
#define DIRTYRATE_SAMPLE_DEFAULT	4096

struct dirtyrate_params {
	enum dirtyrate_mode mode;
	uint64_t duration_ms;		/* 100 .. 3,600,000 */
	uint64_t interval_ms;		/* 10 .. duration_ms */
	uint32_t sample_pages;		/* sample mode: 64 .. 1,048,576 (at most the guest's) */
	bool wws;			/* bitmap mode: also the writable working set curve */
};

/*
 * The writable working set (Clark et al., NSDI'05): the distinct pages
 * written in a window, against the window's length. With wws, bitmap
 * mode keeps every interval's dirty set (at most DIRTYRATE_WWS_BYTES of
 * them: the measurement is refused if they would not fit) and, when it
 * ends, takes for windows of 1, 2, 4, ... intervals the mean over the
 * run's back-to-back windows of that length of the pages written in
 * each, counted once.
 */
#define DIRTYRATE_WWS_BYTES	(256ULL << 20)

/*
 * Starts a measurement (replacing the result of the last one); refused
 * while one runs or when bitmap mode finds dirty logging off. The reason
 * in err.
 */
int dirtyrate__start(struct kvm *kvm, const struct dirtyrate_params *p, char *err,
		     size_t errlen);
/* Its status and what it measured so far; NULL if none was ever started. */
json_t *dirtyrate__query(struct kvm *kvm);
/* Cancels one that runs (its result so far stays, "cancelled"); true if one ran. */
bool dirtyrate__cancel(struct kvm *kvm);
/* At the VM's end: cancels, waits for its thread, forgets it. */
void dirtyrate__stop(struct kvm *kvm);

#endif
