/*
 * Guest progress reports (KM_HC_PROGRESS), kept as a bounded time series
 * with host timestamps. The series lets a test or a migration see what the
 * guest itself experienced: a gap between two reports of one vCPU is time
 * the guest did not run.
 */
#ifndef KM_PROGRESS_H
#define KM_PROGRESS_H

#include <pthread.h>
#include <stdint.h>

#include "kvm/guest/abi.h"

#define PROGRESS_LOG_SIZE 65536	/* entries kept; older ones are overwritten */

struct progress_sample {
	uint64_t host_ns;	/* CLOCK_MONOTONIC when the report arrived */
	uint64_t counter;	/* the guest's work counter */
	uint64_t max_gap_tsc;	/* longest gap the guest saw in its loop */
	uint32_t vcpu;
	uint32_t reserved;
};

struct progress_vcpu {
	uint64_t reports;
	uint64_t counter;
	uint64_t first_ns, last_ns;
	uint64_t first_counter;
	uint64_t max_gap_ns;	/* longest gap between two reports */
	uint64_t max_guest_gap_tsc;
};

struct progress_log {
	pthread_mutex_t lock;
	struct progress_sample *ring;
	uint64_t head;		/* samples ever recorded */
	struct progress_vcpu vcpu[KM_MAX_VCPUS];
};

int progress__init(struct progress_log *log);
void progress__destroy(struct progress_log *log);
/*
 * A vCPU's report. Its time is read under the log's lock, so the ring is
 * in time order even when vCPUs report at once (progress__samples' since_ns
 * and the --progress series rely on it).
 */
void progress__record(struct progress_log *log, uint32_t vcpu, uint64_t counter,
		      uint64_t max_gap_tsc);
/* A consistent copy of one vCPU's summary. */
void progress__get(struct progress_log *log, uint32_t vcpu, struct progress_vcpu *out);
/*
 * Copies up to max samples recorded at or after since_ns, oldest first.
 * Returns how many were copied.
 */
size_t progress__samples(struct progress_log *log, uint64_t since_ns,
			 struct progress_sample *out, size_t max);

#endif
