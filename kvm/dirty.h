/*
 * Dirty-page tracking (DESIGN.md s.6): one tracker per VM over all memory
 * slots, with three KVM backends, fanned out to any number of subscribers.
 *
 * Pages are numbered across the slots in order (slot 0's pages first).
 * Each subscriber has its own bitmap: a harvest (reading what KVM logged)
 * ORs the new pages into every subscriber, and dirty__read hands a
 * subscriber everything dirtied since its own previous read, whatever the
 * others do. The read harvests first, and KVM re-protects a page before the
 * read returns it, so a consumer that copies a page after reading it never
 * misses a later write: the write faults and is logged again.
 *
 * Logging is on while at least one subscriber exists (or as set by dirty__set_mode),
 * so a VM pays the write-fault cost only while someone needs dirty pages.
 */
#ifndef KM_DIRTY_H
#define KM_DIRTY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bitmap.h"

struct kvm;
struct kvm_cpu;

enum dirty_backend {
	DIRTY_BITMAP,	/* KVM_GET_DIRTY_LOG, which clears and re-protects */
	DIRTY_CLEAR,	/* manual protect: KVM_GET_DIRTY_LOG + KVM_CLEAR_DIRTY_LOG in chunks */
	DIRTY_RING,	/* per-vCPU dirty rings (KVM_CAP_DIRTY_LOG_RING_ACQ_REL) */
	DIRTY_DEFAULT,	/* clear where KVM offers it, else bitmap (resolved by dirty__init) */
};

/* When KVM logs: */
enum dirty_log_mode {
	DIRTY_LOG_AUTO,	/* while at least one subscriber exists (the default) */
	DIRTY_LOG_ON,	/* always */
	DIRTY_LOG_OFF,	/* never; subscribers' next read is every page (a gap) */
};

#define DIRTY_RING_DEFAULT_BYTES	(1U << 20)	/* per vCPU: 65536 entries */
#define DIRTY_CLEAR_CHUNK_PAGES		(64U * 1024)	/* 256 MiB re-protected per ioctl */

struct dirty_sub {
	struct bitmap bits;	/* dirtied since the last read */
	bool active;
	bool gap;		/* logging was off meanwhile: the next read is all pages */
	char name[32];
};

#define DIRTY_MAX_SUBS 8

struct dirty_stats {
	uint64_t harvests;
	uint64_t harvest_ns_total, harvest_ns_last, harvest_ns_max;
	uint64_t pages_harvested;	/* new dirty pages seen, counted once per harvest */
	uint64_t vmm_pages;		/* pages the VMM itself wrote while logging */
	uint64_t ring_full_exits;
	uint64_t enable_ns_last, disable_ns_last;
};

struct dirty_tracker {
	struct kvm *kvm;
	enum dirty_backend backend;
	uint32_t ring_bytes;		/* per vCPU, ring backend */
	bool manual_initially_set;	/* clear backend: KVM_DIRTY_LOG_INITIALLY_SET in use */

	/*
	 * lock serializes harvests, subscriber changes and VMM-write marking.
	 * A vCPU thread takes it on KVM_EXIT_DIRTY_RING_FULL, so whoever holds
	 * it must never wait for a vCPU.
	 */
	pthread_mutex_t lock;
	bool logging;			/* KVM is logging now */
	enum dirty_log_mode mode;
	uint64_t nr_pages;
	uint64_t slot_first[2];		/* first page number of each slot */
	struct bitmap harvest;		/* scratch: one harvest's pages */
	uint64_t *kvm_bitmap;		/* scratch for KVM_GET_DIRTY_LOG */
	struct dirty_sub subs[DIRTY_MAX_SUBS];
	uint32_t *ring_fetch;		/* per vCPU: next ring index to read */
	void *rings[16];		/* per vCPU: its mmapped struct kvm_dirty_gfn ring */
	struct dirty_stats stats;
};

const char *dirty__backend_name(enum dirty_backend b);
int dirty__parse_backend(const char *s, enum dirty_backend *out);

/*
 * Before any vCPU exists (the ring must be enabled first): checks that KVM
 * offers the backend and prepares it. Called by kvm__create.
 */
int dirty__init(struct dirty_tracker *t, struct kvm *kvm, enum dirty_backend backend,
		uint32_t ring_bytes);
/* After the vCPUs exist: maps the rings. */
int dirty__init_vcpus(struct dirty_tracker *t);
void dirty__destroy(struct dirty_tracker *t);

/*
 * A new subscriber. all_dirty: its first read returns every page (what a
 * migration or a first checkpoint needs); otherwise only pages dirtied
 * after this call. Turns logging on if it was off. Returns the subscriber
 * index or a negative error (KM_ERR_NO_SPACE past DIRTY_MAX_SUBS).
 */
int dirty__subscribe(struct dirty_tracker *t, const char *name, bool all_dirty);
/* Drops a subscriber; in auto mode logging goes off with the last one. */
void dirty__unsubscribe(struct dirty_tracker *t, int sub);
/*
 * Harvests, then moves subscriber sub's pages into out (nr_pages bits,
 * initialised by the caller with bitmap_init) and clears them. Returns the
 * number of pages in out.
 */
int64_t dirty__read(struct dirty_tracker *t, int sub, struct bitmap *out);

/*
 * Switches logging on, off or back to automatic on a running VM. Turning it
 * off harvests first and leaves the subscribers a gap: their next read is
 * every page, so nothing written meanwhile is lost.
 */
int dirty__set_mode(struct dirty_tracker *t, enum dirty_log_mode mode);
const char *dirty__mode_name(enum dirty_log_mode m);

/* Harvests KVM's log into the subscribers now. */
int dirty__harvest(struct dirty_tracker *t);

/* Marks guest physical [gpa, gpa+len) dirty for every subscriber (VMM writes). */
void dirty__mark(struct dirty_tracker *t, uint64_t gpa, uint64_t len);

/* KVM_EXIT_DIRTY_RING_FULL on cpu: harvest the rings so it can run again. */
int dirty__ring_full(struct dirty_tracker *t, struct kvm_cpu *cpu);

/*
 * Ring backend: each vCPU's running count of ring entries collected so far
 * (by any harvest, whoever asked for it), into out[KM_MAX_VCPUS]. The
 * counts are u32 and wrap: a consumer keeps its previous copy and takes
 * differences, which stay right (dirtyrate.c, dirtylimit.c). A page a vCPU
 * dirtied counts once per harvest period, as KVM logs it once until the
 * next reset re-protects it.
 */
void dirty__ring_counts(struct dirty_tracker *t, uint32_t *out);


void dirty__get_stats(struct dirty_tracker *t, struct dirty_stats *out, bool *logging);

#endif
