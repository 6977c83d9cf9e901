/*
 * Internals of the sending side shared by send.c (the stream) and mig.c
 * (state, policy, pacing, throttling, the switchover). One VM per process,
 * so one migration at a time: the state is a single struct.
 */
#ifndef KM_MIG_H
#define KM_MIG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bitmap.h"
#include "pages.h"
#include "stream.h"
#include "kvm/throttle.h"
#include "kvm/vmrec.h"
#include "migrate/migrate.h"
#include "migrate/policy.h"

struct mig {
	struct kvm *kvm;
	struct migrate_params p;
	pthread_mutex_t lock;		/* st, c (for cancel), go_sent, final_read */
	pthread_cond_t cond;		/* final_read */
	bool final_read;		/* a client has seen the completed status */
	struct migrate_stats st;
	pthread_t thread;
	bool thread_started;
	atomic_int cancel;
	/*
	 * Readable once cancelled: wakes a connect or TLS handshake in
	 * progress (no channel to abort yet). Made at the first migration
	 * (-1 before), kept for the process's life, drained at each start.
	 */
	int cancel_efd;

	struct chan_tls *tls;
	struct chan *c;
	struct stream *s;
	int sub;			/* dirty subscriber, -1 if none */

	bool paused_by_us, go_sent;
	bool waiting;			/* blocked on the peer (under lock) */
	uint64_t pause_ns;
	uint64_t capture_realtime_ns;	/* when the vCPU state (TSC) was read */
	uint64_t pace_t0, pace_bytes0;	/* bandwidth cap: since when, from what */
	uint64_t round_pps;		/* pages/s sent in the last round */
	uint64_t round_ns;		/* duration of the last round */
	uint64_t round_dirty;		/* pages the current round sends */
	uint64_t round_t0, round_bytes0, round_pages0;	/* where the current round began */
	uint64_t round_zero0, round_lz40, round_raw0;
	struct vmrec_enc enc;		/* pages into batches (kvm/vmrec.h) */

	struct mig_round *trace;	/* MIG_TRACE_MAX rows */
	struct migrate_progress *dest_progress;	/* the destination's reports (REC_GUEST_REPORT) */
	unsigned int nr_dest_progress;
	unsigned int nr_trace;

	struct kvm_throttle throttle;	/* auto-converge */
	bool dl_on;			/* it put the per-vCPU dirty limit on */
	unsigned int dl_round;		/* rounds completed then */
};

#define MIG_TRACE_MAX	4096

struct mig_round {
	unsigned int round;
	unsigned int throttle_pct;
	uint64_t start_ns;	/* since the migration started */
	uint64_t duration_ns;
	uint64_t dirty;		/* pages to send this round (read at its start) */
	uint64_t pages;		/* pages sent */
	uint64_t bytes;		/* wire bytes */
	uint64_t zero, lz4, raw;	/* the pages sent, by encoding */
	uint64_t expected_ns;	/* expected downtime when the round began */
};

extern struct mig mig__g;

void *mig__thread(void *arg);

void mig__lock(struct mig *m);
void mig__unlock(struct mig *m);
void mig__set_status(struct mig *m, enum migrate_status s);
/* Appends one row to the per-round trace (query-migrate {"trace": true}). */
/* Under the lock: one trace row for the round begun last, dt long. */
void mig__trace_round(struct mig *m, uint64_t dt);
/* Records the first failure reason (also logged). */
void mig__fail(struct mig *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int mig__connect(struct mig *m);
void mig__setup_done(struct mig *m);
int mig__check_cancel(struct mig *m);
/*
 * Around waits for the peer (its answer, or its draining of what we
 * queued): a cancel meanwhile aborts the channel instead of waiting for a
 * peer that may never answer.
 */
void mig__set_waiting(struct mig *m, bool waiting);
void mig__account(struct mig *m, const struct pages_stats *st);
/* Bandwidth cap: sleeps until the bytes sent so far and the next ones fit the rate. */
int mig__pace(struct mig *m, uint64_t next);
/*
 * Whether the destination spoke mid-round (it does only to give up): then
 * KM_ERR_REFUSED, its reason in st.error; else 0. Called per batch.
 */
int mig__peer_spoke(struct mig *m);
/*
 * Decides after a read of n dirty pages (policy.c), and does what follows
 * from it here: the expected downtime and dirty rate in the stats, the
 * throttle set, a failure logged at a limit unless forced.
 */
enum policy_verdict mig__policy(struct mig *m, uint64_t n);
/* A round of n pages starts / ended (rate, trace row, round count). */
void mig__begin_round(struct mig *m, uint64_t n);
/* CPU time of this (the migration) thread and the stream's threads, ns. */
uint64_t mig__cpu_ns(struct mig *m);
void mig__end_round(struct mig *m);
int mig__pause(struct mig *m);
int mig__put_end(struct mig *m);
/* REC_GO, then REC_RUNNING: the switchover. */
int mig__go(struct mig *m);
/* Cleans up after the thread's work, whatever its outcome r. */
void mig__finish(struct mig *m, int r);
/*
 * After a completed migration: the source process lingers (paused, like
 * QEMU's postmigrate) until a client has read the outcome or a few
 * seconds passed, then stops for good.
 */
void mig__linger_and_stop(struct mig *m);


#endif
