/*
 * The offline pre-copy simulator (kvm-migrate simulate): replays a
 * migration over a dirty trace (lib/dtrace.h) for a given link, taking
 * every decision from policy.c, the engine's own convergence policy.
 *
 * The model, round by round (as send.c runs them):
 *   - the migration starts start_ns into the trace (0: at its start); its
 *     setup (connecting, the config, the destination's acceptance) takes
 *     setup_ns, while the guest runs on untracked, and pre-copy begins then;
 *   - round 0 sends every page the trace dirtied before that, or with
 *     start_ns 0 every page it ever dirtied (the engine's bulk round sends
 *     the pages ever written and skips the rest; a trace only knows the
 *     pages written while it was recorded), or every guest page with
 *     bulk_all; and the pages first written while it runs that its scan
 *     of memory, in page order after the bulk round's fixed cost, reads
 *     after they were written (the engine skips a page never written as a
 *     hole; once written it is data and goes): a sequential writer ahead
 *     of the scan gives its new pages, a writer behind it none. The scan
 *     reads a batch (batch_bytes) at once, when the one before it leaves
 *     at bandwidth: a round of one batch is read at its start;
 *   - a round of n pages takes n * (page_size / compress + page_overhead)
 *     bytes at bandwidth, plus round_ns: reading the dirty log and the
 *     destination's acknowledgement of the round (send.c waits for it);
 *     the bulk round plus bulk_ns instead (it also switches dirty logging
 *     on over all memory and finds the written part of it: costs of the
 *     guest's size, not of the pages sent);
 *   - meanwhile the guest runs through the trace: by the round's length,
 *     slowed by the throttle (at p % it gets (100 - p) % of the time), and
 *     the next round sends the union of the pages its intervals dirtied in
 *     that stretch of trace time. An interval covered in part gives a part
 *     of its pages: each page is taken to be written at a fixed phase of
 *     every interval (a golden-ratio sequence over page numbers), so that
 *     consecutive stretches split an interval's pages between them exactly;
 *   - past the trace's end the trace starts over (it is taken to repeat);
 *   - after each read of the dirty set, policy__decide says go on, stop
 *     and copy (downtime = the rest at bandwidth plus switchover_ns: the
 *     state, the destination loading it, the go/running handshake) or a
 *     limit (given up, or stop and copy when forced).
 * The four fixed costs are the machine's and the link's, not the
 * workload's: measure them once (docs/research.md s.5: scripts/bench-sim
 * fits them to migrations of calibration guests of the trace's memory
 * size) and give them to every simulation; 0 (the default) leaves them out.
 */
#ifndef KM_SIM_H
#define KM_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "dtrace.h"
#include "migrate/policy.h"

#define SIM_PAGE_OVERHEAD	8	/* a REC_PAGES entry's gpa and kind (lib/pages.h) */
#define SIM_MAX_ROUNDS		100000	/* without round or time limits, this is the limit */

struct sim_params {
	uint64_t bandwidth;		/* bytes/s, > 0 */
	double compress;		/* >= 1: a page's bytes are divided by it */
	uint64_t page_overhead;		/* wire bytes per page besides its contents */
	uint64_t batch_bytes;		/* the scan reads this much at once (0: a page) */
	bool bulk_all;			/* round 0 sends all guest pages, not the touched ones */
	uint64_t start_ns;		/* the migration begins this far into the trace */
	uint64_t setup_ns;		/* from its start to the bulk round */
	uint64_t bulk_ns;		/* fixed cost of the bulk round (round 0) */
	uint64_t round_ns;		/* fixed cost of each later pre-copy round */
	uint64_t switchover_ns;		/* fixed part of the downtime */
	struct policy_params policy;
};

struct sim_round {
	uint64_t start_ns, duration_ns;
	uint64_t pages, bytes;
	unsigned int throttle_pct;	/* during the round */
	uint64_t expected_ns;		/* the decision's before it (UINT64_MAX: none yet) */
	uint64_t trace_ns;		/* trace time the guest ran during it */
};

struct sim_result {
	bool converged;			/* the policy said stop-and-copy */
	bool forced;			/* a limit, copied anyway */
	bool gave_up;			/* a limit, not forced: the source runs on */
	unsigned int rounds;		/* pre-copy rounds, the bulk round included */
	uint64_t setup_ns;		/* before the bulk round (as given) */
	uint64_t precopy_ns;		/* the rounds, until the pause (or giving up) */
	uint64_t downtime_ns;		/* the stop-and-copy (0 if given up) */
	uint64_t total_ns;		/* setup + pre-copy + downtime */
	uint64_t pages, bytes;		/* sent in all, the stop-and-copy included */
	uint64_t final_pages;		/* sent paused */
	unsigned int throttle_pct;	/* at the end */
	/* The guest's progress during the pre-copy, and what it would have been unthrottled. */
	uint64_t progress, progress_unthrottled;
	bool has_progress;
	struct sim_round *round;	/* rounds of pre-copy */
	unsigned int nr_round;
};

/*
 * Replays pre-copy over t as p says. 0 and *out (free with sim__free),
 * KM_ERR_INVALID (no bandwidth, a ratio below 1, a trace without time, a
 * start_ns at or past the trace's end), or
 * -ENOMEM.
 */
int sim__run(const struct dtrace *t, const struct sim_params *p, struct sim_result *out);
void sim__free(struct sim_result *r);

#endif
