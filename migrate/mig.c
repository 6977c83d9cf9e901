/*
 * The sending side's state machine around send.c: status and numbers,
 * connecting, the convergence policy, the bandwidth cap and the
 * switchover handshake (DESIGN.md s.8: never both running, never no copy).
 * The public entry points (migrate.h) are in migrate.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "record.h"
#include "rundir.h"
#include "kvm/control.h"
#include "kvm/dirtylimit.h"
#include "kvm/kvm.h"
#include "kvm/x86/pc.h"
#include "migrate/mig.h"

/* One VM per process, so one migration at a time (mig.h). */
struct mig mig__g = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
	.sub = -1,
	.cancel_efd = -1,
};

void mig__lock(struct mig *m)
{
	pthread_mutex_lock(&m->lock);
}

void mig__unlock(struct mig *m)
{
	pthread_mutex_unlock(&m->lock);
}

void mig__set_status(struct mig *m, enum migrate_status s)
{
	mig__lock(m);
	m->st.status = s;
	mig__unlock(m);
}

void mig__fail(struct mig *m, const char *fmt, ...)
{
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_error("migration of %s: %s", m->kvm->name, text);
	mig__lock(m);
	if (!m->st.error[0])
		snprintf(m->st.error, sizeof(m->st.error), "%s", text);
	mig__unlock(m);
}

int mig__connect(struct mig *m)
{
	char err[CHAN_ERR_MAX] = "";
	bool is_unix = !strncmp(m->p.uri, "unix:", 5);
	int r;

	if (!is_unix && !m->p.insecure &&
	    (r = chan_tls_new(m->p.tls_dir, false, &m->tls, err, sizeof(err))) != 0) {
		mig__fail(m, "TLS setup: %s", err);
		return r;
	}
	/* A cancel now wakes the connect or handshake through cancel_efd. */
	if ((r = chan_connect_cancellable(m->p.uri, m->tls, MIGRATE_HANDSHAKE_MS, m->cancel_efd,
					  &m->c, err, sizeof(err))) != 0) {
		if (r == KM_ERR_CANCELED)
			snprintf(err, sizeof(err), "cancelled on request");
		mig__fail(m, "connecting to %s: %s", m->p.uri, err[0] ? err : km_strerror(r));
		return r;
	}
	chan_set_timeout(m->c, (int)m->p.io_timeout_ms);
	if (!(m->s = stream_new(m->c)))
		return -ENOMEM;
	log_info("migration of %s: connected to %s (%s)", m->kvm->name, m->p.uri,
		 chan_peer(m->c));
	return 0;
}

void mig__setup_done(struct mig *m)
{
	mig__lock(m);
	m->st.setup_ns = kvm__now_ns() - m->st.start_ns;
	m->st.status = MIGRATE_ACTIVE;
	mig__unlock(m);
	m->pace_t0 = kvm__now_ns();
	m->pace_bytes0 = stream_bytes_out(m->s);
}

void mig__set_waiting(struct mig *m, bool waiting)
{
	mig__lock(m);
	m->waiting = waiting;
	if (waiting && atomic_load(&m->cancel) && !m->go_sent && m->c)
		chan_abort(m->c);
	mig__unlock(m);
}

int mig__check_cancel(struct mig *m)
{
	uint64_t elapsed = kvm__now_ns() - m->st.start_ns;

	if (atomic_load(&m->cancel))
		return KM_ERR_CANCELED;
	if (m->kvm->state == KVM_STATE_STOPPED) {
		mig__fail(m, "the VM stopped during the migration");
		return KM_ERR_STATE;
	}
	/* The time limit binds the pre-copy phase; the handshake has its own. */
	if (m->p.timeout_ms && elapsed > m->p.timeout_ms * 1000000ULL &&
	    m->p.on_limit == MIGRATE_LIMIT_CANCEL && !m->paused_by_us) {
		mig__fail(m, "time limit of %llu ms reached without converging",
			  (unsigned long long)m->p.timeout_ms);
		return KM_ERR_TIMEOUT;
	}
	return 0;
}

void mig__account(struct mig *m, const struct pages_stats *st)
{
	mig__lock(m);
	m->st.pages += st->pages;
	m->st.zero += st->zero;
	m->st.raw += st->raw;
	m->st.lz4 += st->lz4;
	m->st.raw_bytes += st->bytes_in;
	m->st.wire_bytes = stream_bytes_out(m->s);
	if (m->st.remaining_pages >= st->pages)
		m->st.remaining_pages -= st->pages;
	/* The live rate of the round under way (the progress line shows it). */
	if (m->round_t0) {
		uint64_t dt = kvm__now_ns() - m->round_t0;

		if (dt > 10000000ULL)
			m->st.mbps = (double)(m->st.wire_bytes - m->round_bytes0) * 8.0 /
				     ((double)dt / 1e9) / 1e6;
	}
	mig__unlock(m);
}

/* Unused time the cap may make up for at once: a burst of at most this. */
#define PACE_CREDIT_NS	10000000ULL

int mig__pace(struct mig *m, uint64_t next)
{
	uint64_t sent, due_ns, now;
	struct timespec ts;

	if (!m->p.bandwidth)
		return 0;
	sent = stream_bytes_out(m->s) - m->pace_bytes0;
	due_ns = (uint64_t)((double)sent * 1e9 / (double)m->p.bandwidth);
	/*
	 * Time spent not sending (waiting for a round's acknowledgement,
	 * reading the dirty log) is not credit to burst with afterwards,
	 * beyond PACE_CREDIT_NS: the cap holds over any stretch of time.
	 */
	now = kvm__now_ns();
	if (now > m->pace_t0 + due_ns + PACE_CREDIT_NS)
		m->pace_t0 = now - due_ns - PACE_CREDIT_NS;
	/*
	 * The next batch leaves when it is due, not before: paced after it
	 * went, a round's first batch (up to VMREC_BATCH bytes) would leave
	 * at the link's speed after every wait for an acknowledgement.
	 */
	due_ns = (uint64_t)((double)(sent + next) * 1e9 / (double)m->p.bandwidth);
	/* Sleep in slices so that a cancel, or the destination giving up, is seen promptly. */
	while ((now = kvm__now_ns()) < m->pace_t0 + due_ns) {
		uint64_t left = m->pace_t0 + due_ns - now;
		int r;

		if (left > 20000000ULL)
			left = 20000000ULL;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left;
		nanosleep(&ts, NULL);
		if (atomic_load(&m->cancel))
			return KM_ERR_CANCELED;
		if ((r = mig__peer_spoke(m)) != 0)
			return r;
	}
	return 0;
}

/*
 * The policy's per-vCPU dirty limit (kvm/dirtylimit.h), as the migration's
 * own: a user's limits stay, and the lower one binds; mig__finish lifts it.
 */
static void mig__dirty_limit_on(struct mig *m, uint64_t n)
{
	char err[200];

	/* Once, whatever happens: auto-converge counts its rounds from here. */
	m->dl_on = true;
	m->dl_round = m->st.rounds;
	if (dirtylimit__set(m->kvm, DIRTYLIMIT_MIGRATION, -1, m->p.dirty_limit_mbps, err,
			    sizeof(err)) != 0) {
		log_warn("migration of %s: no dirty limit: %s", m->kvm->name, err);
		return;
	}
	mig__lock(m);
	m->st.dirty_limit_mbps = m->p.dirty_limit_mbps;
	mig__unlock(m);
	log_info("migration of %s: round %u, %llu pages dirty: dirty limit %g MB/s per vCPU",
		 m->kvm->name, m->st.rounds, (unsigned long long)n, m->p.dirty_limit_mbps);
}

enum policy_verdict mig__policy(struct mig *m, uint64_t n)
{
	struct policy_params pp = {
		.downtime_ns = m->p.downtime_ms * 1000000ULL,
		.max_rounds = m->p.max_rounds,
		.timeout_ns = m->p.timeout_ms * 1000000ULL,
		.auto_converge = m->p.auto_converge,
		.max_throttle = m->p.max_throttle,
		.dirty_limit_mbps = m->p.dirty_limit_mbps,
		.force = m->p.on_limit == MIGRATE_LIMIT_FORCE,
	};
	struct policy_state ps = {
		.rounds = m->st.rounds,
		.dirty = n,
		.round_pps = m->round_pps,
		.round_ns = m->round_ns,
		.elapsed_ns = kvm__now_ns() - m->st.start_ns,
		.throttle_pct = throttle__pct(&m->throttle),
		.dirty_limit_on = m->dl_on,
		.dirty_limit_rounds = m->dl_on ? m->st.rounds - m->dl_round : 0,
	};
	struct policy_decision d;
	unsigned int pct;

	/* The decision itself is policy.c's, shared with the simulator. */
	policy__decide(&pp, &ps, &d);
	mig__lock(m);
	m->st.remaining_pages = n;
	if (m->round_ns)
		m->st.dirty_pages_rate = (uint64_t)((double)n * 1e9 / (double)m->round_ns);
	m->st.expected_downtime_ns = d.expected_ns == UINT64_MAX ? 0 : d.expected_ns;
	mig__unlock(m);
	if (d.verdict == POLICY_LIMIT && !d.copy_anyway)
		mig__fail(m, "did not converge in %u rounds / %llu ms (%llu pages dirty, "
			  "expected downtime %llu ms > %llu ms)", m->st.rounds,
			  (unsigned long long)(ps.elapsed_ns / 1000000),
			  (unsigned long long)n, (unsigned long long)(d.expected_ns / 1000000),
			  (unsigned long long)m->p.downtime_ms);
	if (d.dirty_limit_start)
		mig__dirty_limit_on(m, n);
	if (d.throttle_changed) {
		throttle__set(&m->throttle, d.throttle_pct);
		pct = throttle__pct(&m->throttle);
		log_info("migration of %s: round %u, %llu pages dirty: throttle %u%%",
			 m->kvm->name, m->st.rounds, (unsigned long long)n, pct);
	}
	return d.verdict;
}

void mig__begin_round(struct mig *m, uint64_t n)
{
	uint64_t t0 = kvm__now_ns(), bytes0 = stream_bytes_out(m->s);

	mig__lock(m);
	m->round_pages0 = m->st.pages;
	m->round_zero0 = m->st.zero;
	m->round_lz40 = m->st.lz4;
	m->round_raw0 = m->st.raw;
	m->st.remaining_pages = n;
	m->round_dirty = n;
	m->round_t0 = t0;
	m->round_bytes0 = bytes0;
	mig__unlock(m);
}

void mig__trace_round(struct mig *m, uint64_t dt)
{
	struct mig_round *t;

	if (!m->trace || m->nr_trace >= MIG_TRACE_MAX)
		return;
	t = &m->trace[m->nr_trace];
	t->round = m->nr_trace;
	t->throttle_pct = throttle__pct(&m->throttle);
	t->start_ns = m->round_t0 - m->st.start_ns;
	t->duration_ns = dt;
	t->dirty = m->round_dirty;
	t->pages = m->st.pages - m->round_pages0;
	t->bytes = stream_bytes_out(m->s) - m->round_bytes0;
	t->zero = m->st.zero - m->round_zero0;
	t->lz4 = m->st.lz4 - m->round_lz40;
	t->raw = m->st.raw - m->round_raw0;
	t->expected_ns = m->st.expected_downtime_ns;
	m->nr_trace++;
}

uint64_t mig__cpu_ns(struct mig *m)
{
	return kvm__thread_cpu_ns() + (m->s ? stream_threads_cpu_ns(m->s) : 0);
}

void mig__end_round(struct mig *m)
{
	uint64_t dt = kvm__now_ns() - m->round_t0, pages, cpu = mig__cpu_ns(m);

	if (dt == 0)
		dt = 1;
	mig__lock(m);
	mig__trace_round(m, dt);
	pages = m->st.pages - m->round_pages0;
	m->round_ns = dt;
	/* A round of a few pages says little about the rate: policy.c keeps the last good one. */
	m->round_pps = policy__rate(m->round_pps, pages, dt);
	m->st.mbps = (double)(stream_bytes_out(m->s) - m->round_bytes0) * 8.0 /
		     ((double)dt / 1e9) / 1e6;
	m->st.wire_bytes = stream_bytes_out(m->s);
	m->st.source_cpu_ns = cpu;
	m->st.rounds++;
	mig__unlock(m);
}

int mig__pause(struct mig *m)
{
	int r;

	throttle__stop(&m->throttle);
	if ((r = kvm__hold(m->kvm, KVM_HOLD_MIGRATION)) != 0) {
		mig__fail(m, "cannot pause the VM (it stopped)");
		return r;
	}
	m->paused_by_us = true;
	m->pause_ns = kvm__now_ns();
	return 0;
}

int mig__put_end(struct mig *m)
{
	struct buf *p = buf_new(64);
	/* A user's stop up to this moment (even during the stop-and-copy) travels. */
	bool user_stopped = (kvm__holds(m->kvm) & KVM_HOLD_USER) != 0;
	int r;

	if (!p)
		return -ENOMEM;
	/*
	 * When the vCPU state was read (wall clock): the destination moves
	 * the guest's TSC on by the time until it loads it, so the guest's
	 * clock shows the downtime it really had.
	 */
	if ((r = rec_put_field_u64(p, 1, m->capture_realtime_ns)) == 0 &&
	    /* A VM paused by its user arrives paused. */
	    (r = rec_put_field_u64(p, 2, user_stopped)) == 0)
		r = stream_put(m->s, REC_END, buf_ptr(p), (uint32_t)buf_len(p));
	buf_free(p);
	return r;
}

static void mig__guest_report(struct mig *m, const uint8_t *p, uint32_t len)
{
	struct migrate_progress *v = NULL;
	const uint8_t *f;
	uint32_t flen;
	size_t i, n = 0;
	uint64_t stall;

	/* Field 2: the progress reports after the switchover, if go asked for them. */
	if (rec_find_field(p, len, 2, &f, &flen) == 0 && flen % MIGRATE_PROGRESS_ENTRY == 0 &&
	    (n = flen / MIGRATE_PROGRESS_ENTRY) > 0 && n <= MIGRATE_PROGRESS_MAX &&
	    (v = calloc(n, sizeof(*v)))) {
		for (i = 0; i < n; i++)
			migrate__progress_entry(f, i, &v[i]);
	}
	mig__lock(m);
	if (rec_find_u64(p, len, 1, &stall) == 0)
		m->st.guest_stall_ns = stall;
	if (v) {
		free(m->dest_progress);
		m->dest_progress = v;
		m->nr_dest_progress = (unsigned int)n;
	}
	mig__unlock(m);
}

static int mig__put_go(struct mig *m)
{
	struct buf *p = buf_new(64);
	int r = -ENOMEM;

	if (p && (!m->p.dest_progress_ms ||
		  (r = rec_put_field_u64(p, 1, m->p.dest_progress_ms)) == 0))
		r = stream_put(m->s, REC_GO, buf_ptr(p), (uint32_t)buf_len(p));
	buf_free(p);
	return r;
}

int mig__go(struct mig *m)
{
	const uint8_t *p;
	uint32_t type, len;
	uint64_t cpu;
	int r;

	/*
	 * The destination takes the disk's lock on go: let go of it first
	 * (x86/pc.h). A failure or cancel from here to go takes it back
	 * (mig__finish).
	 */
	if ((r = pc__disk_release(m->kvm)) != 0) {
		mig__fail(m, "cannot hand the disk over (%s)", km_strerror(r));
		return r;
	}
	mig__lock(m);
	if (atomic_load(&m->cancel)) {
		mig__unlock(m);
		return KM_ERR_CANCELED;
	}
	m->go_sent = true;	/* from now on, cancel is refused */
	mig__unlock(m);
	/* Field 1: how long after resuming the destination is to send the guest's reports. */
	if ((r = mig__put_go(m)) == 0)
		r = stream_flush(m->s);
	if (r == 0)
		r = stream_get(m->s, 4096, &type, &p, &len);
	if (r == 0 && type != REC_RUNNING)
		r = KM_ERR_PEER;
	if (r != 0) {
		/*
		 * The destination may or may not run the VM: keep this copy
		 * paused and whole until someone asks the destination.
		 */
		mig__fail(m, "link lost after go (%s): the VM stays paused here; outcome unknown, "
			  "ask the destination", km_strerror(r));
		mig__set_status(m, MIGRATE_UNKNOWN);
		return r;
	}
	cpu = mig__cpu_ns(m);
	mig__lock(m);
	m->st.downtime_ns = kvm__now_ns() - m->pause_ns;
	m->st.source_cpu_ns = cpu;
	/* The migration is done here; waiting for the guest's report is not part of it. */
	m->st.total_ns = kvm__now_ns() - m->st.start_ns;
	m->st.remaining_pages = 0;
	mig__unlock(m);
	/*
	 * The destination follows up with what the guest itself measured
	 * (its longest stall), once every vCPU reported after resuming.
	 * Optional: an older or slower destination just closes.
	 */
	chan_set_timeout(m->c, 2000 + (int)m->p.dest_progress_ms);
	if (stream_get(m->s, MIGRATE_PROGRESS_MAX * MIGRATE_PROGRESS_ENTRY + 4096, &type, &p,
		       &len) == 0 && type == REC_GUEST_REPORT)
		mig__guest_report(m, p, len);
	mig__set_status(m, MIGRATE_COMPLETED);
	return 0;
}

/*
 * A destination that gives up mid-stream (a limit, a deadline, a refusal)
 * says why in a REC_ERROR before it goes, unread behind the pages we keep
 * sending. Reads it (a second at most; the writer is stopped first, what
 * it had queued is dropped): 1 and the reason in st.error if it was there.
 */
static int mig__last_words(struct mig *m)
{
	const uint8_t *p;
	uint32_t type, len;
	char text[200];

	if (stream_get_last_words(m->s, 1000, &type, &p, &len) != 0 || type != REC_ERROR)
		return 0;
	migrate__error_text(p, len, text, sizeof(text));
	log_error("migration of %s: the destination gave up: %s", m->kvm->name, text);
	/* The destination's reason, over whatever the broken link made us say. */
	mig__lock(m);
	snprintf(m->st.error, sizeof(m->st.error), "the destination gave up: %s", text);
	mig__unlock(m);
	return 1;
}

int mig__peer_spoke(struct mig *m)
{
	struct pollfd p = { .fd = chan_fd(m->c), .events = POLLIN };

	/* Mid-round the destination says nothing, unless it gives up. */
	if (poll(&p, 1, 0) <= 0)
		return 0;
	if (!mig__last_words(m))
		mig__fail(m, "the destination closed the connection mid-round");
	return KM_ERR_REFUSED;
}

void mig__finish(struct mig *m, int r)
{
	struct kvm *kvm = m->kvm;
	enum migrate_status s;

	/* The link broke while we wrote: the destination may have said why. */
	if (m->s && m->c && (r == KM_ERR_PEER || r == -EPIPE || r == -ECONNRESET))
		mig__last_words(m);

	throttle__stop(&m->throttle);
	if (m->dl_on) {
		dirtylimit__cancel(kvm, DIRTYLIMIT_MIGRATION, -1);
		m->dl_on = false;
	}
	if (m->sub >= 0) {
		dirty__unsubscribe(&kvm->dirty, m->sub);
		m->sub = -1;
	}
	mig__lock(m);
	s = m->st.status;
	if (s != MIGRATE_COMPLETED && s != MIGRATE_UNKNOWN)
		m->st.status = r == KM_ERR_CANCELED ? MIGRATE_CANCELLED : MIGRATE_FAILED;
	if (r && !m->st.error[0])
		snprintf(m->st.error, sizeof(m->st.error), "%s", km_strerror(r));
	if (!m->st.total_ns)
		m->st.total_ns = kvm__now_ns() - m->st.start_ns;
	m->st.wire_bytes = m->s ? stream_bytes_out(m->s) : 0;
	s = m->st.status;
	mig__unlock(m);

	if (s == MIGRATE_FAILED || s == MIGRATE_CANCELLED) {
		/* Before go: tell the destination (best effort) and carry on here. */
		if (m->s && m->c) {
			struct buf *e = buf_new(512);

			if (e && !rec_put_field_u64(e, 1, (uint64_t)(-r)) &&
			    !rec_put_field(e, 2, m->st.error, (uint32_t)strlen(m->st.error)) &&
			    !stream_put(m->s, REC_ERROR, buf_ptr(e), (uint32_t)buf_len(e)))
				stream_flush(m->s);
			buf_free(e);
		}
		/*
		 * A user's stop (before or during the migration) stays in force.
		 * The disk's lock first: a VM that cannot have it back must not
		 * write its disk, so it stays paused (x86/pc.h).
		 */
		if (m->paused_by_us && pc__disk_take(kvm) != 0)
			log_error("migration of %s: the disk's lock is held by another process: "
				  "the VM stays paused here", kvm->name);
		else if (m->paused_by_us)
			kvm__release(kvm, KVM_HOLD_MIGRATION);
		log_warn("migration of %s %s: %s; the VM %s here", kvm->name,
			 s == MIGRATE_CANCELLED ? "cancelled" : "failed", m->st.error,
			 kvm__holds(kvm) & KVM_HOLD_USER ? "stays paused" : "keeps running");
	} else if (s == MIGRATE_COMPLETED) {
		log_info("migration of %s completed: %.1f ms total, %.2f ms downtime, %u rounds",
			 kvm->name, (double)m->st.total_ns / 1e6, (double)m->st.downtime_ns / 1e6,
			 m->st.rounds);
		/* The name now lives at the destination; open connections still work. */
		control__unpublish(kvm->control);
		rundir_release(&kvm->reservation);
	}
	mig__lock(m);
	stream_free(m->s);
	m->s = NULL;
	chan_close(m->c);
	m->c = NULL;
	mig__unlock(m);
	chan_tls_free(m->tls);
	m->tls = NULL;
}

void mig__linger_and_stop(struct mig *m)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	mig__lock(m);
	while (!m->final_read && m->st.status == MIGRATE_COMPLETED &&
	       pthread_cond_timedwait(&m->cond, &m->lock, &ts) == 0)
		;
	mig__unlock(m);
	kvm__request_stop(m->kvm, KVM_STOP_MIGRATED, "migrated to %s", m->p.uri);
}
