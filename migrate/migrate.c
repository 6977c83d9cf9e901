/*
 * The public side of the sending engine (migrate.h): start, watch, cancel
 * and settle the migration of this process's VM. The work is done by the
 * thread in send.c and the state machine in mig.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "kvm/control.h"
#include "kvm/kvm.h"
#include "kvm/x86/pc.h"
#include "migrate/mig.h"


void migrate__default_params(struct migrate_params *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->tls_dir, sizeof(p->tls_dir), "%s", "/etc/kvm-migrate/x509");
	p->compress = true;
	p->downtime_ms = MIGRATE_DEFAULT_DOWNTIME_MS;
	p->max_rounds = MIGRATE_DEFAULT_MAX_ROUNDS;
	p->timeout_ms = MIGRATE_DEFAULT_TIMEOUT_MS;
	p->on_limit = MIGRATE_LIMIT_CANCEL;
	p->io_timeout_ms = MIGRATE_IO_TIMEOUT_MS;
}

int migrate__start(struct kvm *kvm, const struct migrate_params *p)
{
	struct mig *m = &mig__g;
	int r;

	mig__lock(m);
	if (m->st.status == MIGRATE_SETUP || m->st.status == MIGRATE_ACTIVE ||
	    m->st.status == MIGRATE_DEVICE || m->st.status == MIGRATE_UNKNOWN ||
	    m->st.status == MIGRATE_COMPLETED) {
		mig__unlock(m);
		return KM_ERR_STATE;
	}
	if (kvm->state != KVM_STATE_RUNNING && kvm->state != KVM_STATE_PAUSED) {
		mig__unlock(m);
		return KM_ERR_STATE;
	}
	if (m->thread_started) {
		pthread_join(m->thread, NULL);
		m->thread_started = false;
	}
	m->kvm = kvm;
	m->p = *p;
	memset(&m->st, 0, sizeof(m->st));
	snprintf(m->st.uri, sizeof(m->st.uri), "%s", p->uri);
	if (m->cancel_efd < 0) {
		if ((m->cancel_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
			r = km_errno();
			mig__unlock(m);
			return r;
		}
	} else {
		eventfd_t drained;

		(void)eventfd_read(m->cancel_efd, &drained);
	}
	m->st.status = MIGRATE_SETUP;
	m->st.start_ns = kvm__now_ns();
	m->st.start_wall_ns = kvm__wall_ns();
	atomic_store(&m->cancel, 0);
	throttle__init(&m->throttle, m->kvm, KVM_HOLD_THROTTLE);
	m->sub = -1;
	m->dl_on = false;
	m->dl_round = 0;
	m->paused_by_us = m->go_sent = m->final_read = m->waiting = false;
	m->round_pps = m->round_ns = m->round_t0 = m->round_bytes0 = m->round_pages0 = 0;
	m->nr_trace = 0;
	free(m->dest_progress);
	m->dest_progress = NULL;
	m->nr_dest_progress = 0;
	if (!m->trace && !(m->trace = calloc(MIG_TRACE_MAX, sizeof(*m->trace)))) {
		mig__unlock(m);
		return -ENOMEM;
	}
	r = pthread_create(&m->thread, NULL, mig__thread, m);
	if (r) {
		m->st.status = MIGRATE_FAILED;
		mig__unlock(m);
		return -r;
	}
	m->thread_started = true;
	mig__unlock(m);
	return 0;
}

json_t *migrate__dest_progress_json(struct kvm *kvm)
{
	struct mig *m = &mig__g;
	json_t *a = json_array();
	/* Where the VM started here, on the wall clock the destination's times are in. */
	double start_wall = (double)kvm->start_ns + (double)kvm__wall_ns() - (double)kvm__now_ns();
	unsigned int i;

	mig__lock(m);
	for (i = 0; a && i < m->nr_dest_progress; i++) {
		const struct migrate_progress *e = &m->dest_progress[i];

		json_array_append_new(a, json_pack("{s:f, s:i, s:I}", "ms",
			((double)e->wall_ns - start_wall) / 1e6, "vcpu", (int)e->vcpu,
			"counter", (json_int_t)e->counter));
	}
	mig__unlock(m);
	return a;
}

json_t *migrate__trace_json(struct kvm *kvm, unsigned int from, unsigned int max,
			    unsigned int *total)
{
	struct mig *m = &mig__g;
	json_t *a = json_array();
	unsigned int i;

	mig__lock(m);
	*total = m->nr_trace;
	for (i = from; a && i < m->nr_trace && i - from < max; i++) {
		const struct mig_round *t = &m->trace[i];

		json_array_append_new(a, json_pack(
			"{s:i, s:f, s:f, s:I, s:I, s:I, s:i, s:I, s:f, s:I, s:I, s:I}",
			"round", (int)t->round, "start-ms", (double)t->start_ns / 1e6,
			"duration-ms", (double)t->duration_ns / 1e6, "dirty-pages", (json_int_t)t->dirty,
			"pages-sent", (json_int_t)t->pages, "bytes", (json_int_t)t->bytes,
			"throttle-percentage", (int)t->throttle_pct,
			"remaining-bytes", (json_int_t)(t->dirty * KM_PAGE_SIZE),
			"expected-downtime-ms", (double)t->expected_ns / 1e6,
			"zero-pages", (json_int_t)t->zero, "lz4-pages", (json_int_t)t->lz4,
			"raw-pages", (json_int_t)t->raw));
	}
	mig__unlock(m);
	return a;
}

void migrate__get_stats(struct kvm *kvm, struct migrate_stats *out)
{
	struct mig *m = &mig__g;

	mig__lock(m);
	*out = m->st;
	if (m->st.status == MIGRATE_COMPLETED) {
		m->final_read = true;
		pthread_cond_broadcast(&m->cond);
	}
	if (out->status != MIGRATE_NONE && !out->total_ns)
		out->total_ns = kvm__now_ns() - out->start_ns;
	out->throttle_pct = throttle__pct(&m->throttle);
	mig__unlock(m);
}

int migrate__cancel(struct kvm *kvm)
{
	struct mig *m = &mig__g;
	int r = 0;

	mig__lock(m);
	if (m->go_sent || (m->st.status != MIGRATE_SETUP && m->st.status != MIGRATE_ACTIVE &&
			   m->st.status != MIGRATE_DEVICE)) {
		r = KM_ERR_STATE;
	} else {
		atomic_store(&m->cancel, 1);
		(void)eventfd_write(m->cancel_efd, 1);
		snprintf(m->st.error, sizeof(m->st.error), "cancelled on request");
		/*
		 * Blocked on the peer (its acknowledgement, READY): do not wait
		 * for it; the destination sees the link go and discards the VM.
		 * Otherwise the thread sees the flag within one batch and says
		 * why to the destination.
		 */
		if (m->waiting && m->c)
			chan_abort(m->c);
	}
	mig__unlock(m);
	return r;
}

int migrate__settle(struct kvm *kvm, bool running_there)
{
	struct mig *m = &mig__g;

	mig__lock(m);
	if (m->st.status != MIGRATE_UNKNOWN) {
		mig__unlock(m);
		return KM_ERR_STATE;
	}
	m->st.status = running_there ? MIGRATE_COMPLETED : MIGRATE_FAILED;
	/* The settling client has its answer: no need to linger. */
	m->final_read = true;
	mig__unlock(m);
	if (running_there) {
		log_info("migration of %s: the destination runs the VM; this copy stops",
			 kvm->name);
		control__unpublish(kvm->control);
		rundir_release(&kvm->reservation);
		kvm__request_stop(kvm, KVM_STOP_MIGRATED, "migrated to %s (settled)", m->p.uri);
	} else if (pc__disk_take(kvm) != 0) {
		/* Never two writers of one disk: without its lock the VM waits. */
		log_error("migration of %s: the destination does not run the VM, but the disk's "
			  "lock is held by another process: the VM stays paused here", kvm->name);
	} else {
		log_warn("migration of %s: the destination does not run the VM; resuming here",
			 kvm->name);
		kvm__release(kvm, KVM_HOLD_MIGRATION);
	}
	return 0;
}

void migrate__shutdown(struct kvm *kvm)
{
	struct mig *m = &mig__g;

	mig__lock(m);
	if (m->thread_started && (m->st.status == MIGRATE_SETUP ||
				  m->st.status == MIGRATE_ACTIVE)) {
		atomic_store(&m->cancel, 1);
		(void)eventfd_write(m->cancel_efd, 1);
	}
	mig__unlock(m);
	if (m->thread_started) {
		pthread_join(m->thread, NULL);
		m->thread_started = false;
	}
}

const char *migrate__status_name(enum migrate_status s)
{
	switch (s) {
	case MIGRATE_NONE: return "none";
	case MIGRATE_SETUP: return "setup";
	case MIGRATE_ACTIVE: return "active";
	case MIGRATE_DEVICE: return "device";
	case MIGRATE_COMPLETED: return "completed";
	case MIGRATE_FAILED: return "failed";
	case MIGRATE_CANCELLED: return "cancelled";
	case MIGRATE_UNKNOWN: return "unknown";
	}
	return "?";
}
