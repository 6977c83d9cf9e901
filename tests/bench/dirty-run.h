/*
 * One configuration of the dirty-logging benchmark (in the manner of Linux's
 * tools/testing/selftests/kvm/dirty_log_perf_test.c): a VM whose vCPUs each
 * write one 8-byte word into every stride-th page of their own share of
 * guest RAM, then sync; the host times each pass and what it does between
 * passes (enable logging, harvest, disable logging).
 *
 * The sequence, each step timed on the host's wall clock:
 *   populate     first pass, logging off: every page faulted in
 *   write off    passes over every page, logging off
 *   enable       dirty__subscribe (KVM starts logging)
 *   100%, 10%, 1%  passes writing every 1st / 10th / 100th page, each
 *                followed by dirty__read (harvest + re-protect)
 *   0%           reads with nothing written since the last one: the fixed
 *                cost of a harvest, whatever the number of dirty pages
 *   disable      dirty__unsubscribe (the last subscriber: logging off)
 *   after off    one more pass over every page, logging off
 */
#ifndef KM_BENCH_DIRTY_RUN_H
#define KM_BENCH_DIRTY_RUN_H

#include <stdint.h>

#include "kvm/dirty.h"

#define BENCH_NR_FRACS	3	/* 100%, 10%, 1% of the pages dirty per round */

struct bench_config {
	uint64_t mem;			/* guest RAM, bytes */
	unsigned int nr_vcpus;
	enum dirty_backend backend;
	uint32_t ring_bytes;		/* ring backend, per vCPU; 0: default */
	unsigned int passes;		/* passes per measurement (medians are reported) */
	unsigned int full_passes;	/* the same for the passes over every page */
};

struct bench_frac {
	unsigned int stride;		/* 1, 10, 100 */
	double write_pps;		/* guest pages written per second, logging on */
	double read_ms;			/* dirty__read wall time after a pass */
	double harvest_ms;		/* all harvesting in one round (ring-full ones too) */
	uint64_t dirty;			/* pages a read returned */
	double ring_full;		/* KVM_EXIT_DIRTY_RING_FULL per round */
};

struct bench_result {
	uint64_t test_pages;		/* pages the guest writes on a 100% pass */
	double populate_s;
	double write_off_pps;
	double enable_ms;		/* the KVM part of turning logging on */
	double subscribe_ms;		/* all of dirty__subscribe (enable + first harvest) */
	double disable_ms;		/* all of dirty__unsubscribe (last harvest + disable) */
	double after_off_pps;		/* the first pass after logging went off */
	double empty_harvest_ms;	/* a harvest with no page dirty */
	struct bench_frac frac[BENCH_NR_FRACS];
	uint64_t missed;		/* written pages a read did not report: a bug */
	double total_s;			/* the whole configuration, VM creation included */
};

/*
 * Runs one configuration. Returns 0, or a negative error after printing
 * what went wrong on stderr. VM creation failures end the process through
 * the test library (a message and a non-zero exit status).
 */
int bench_run__config(const struct bench_config *cfg, struct bench_result *out);

#endif
