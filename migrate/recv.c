/*
 * The receiving side of a migration (migrate.h, docs/protocol.md): builds
 * the VM from the stream, and resumes it only after the source said go.
 * A failure at any point before that destroys what was built; the source,
 * told by REC_ERROR or by the broken link, keeps running.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "log.h"
#include "pages.h"
#include "record.h"
#include "rundir.h"
#include "stream.h"
#include "kvm/kvm.h"
#include "kvm/state.h"
#include "kvm/vmrec.h"
#include "kvm/x86/pc.h"
#include "migrate/migrate.h"

#define RECV_MAX_MEM	(256ULL << 30)

struct recv {
	struct stream *s;
	struct migrate_incoming *in;
	struct kvm *kvm;
	struct rundir_name name;	/* reserved before the VM exists, then the VM's */
	struct vmrec_loader ld;	/* pages and state into the VM (kvm/vmrec.h) */
	uint64_t pause_realtime_ns;
	uint64_t paused;	/* the VM was paused at the source: it arrives paused */
	uint64_t rounds;
	uint64_t cpu0_ns;	/* this thread's CPU time when the VM config arrived */
	uint64_t progress_ms;	/* REC_GO asked for the progress reports this long after resuming */
	uint64_t resume_ns;	/* when the vCPUs were started here */
	char why[256];
};

static int recv__fail(struct recv *rv, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int recv__fail(struct recv *rv, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rv->why, sizeof(rv->why), fmt, ap);
	va_end(ap);
	return r;
}

/* MemAvailable of /proc/meminfo, bytes; 0 if it cannot be read. */
static uint64_t recv__mem_available(void)
{
	unsigned long long kib = 0;
	char line[256];
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
			break;
	fclose(f);
	return (uint64_t)kib * 1024;
}

/*
 * Refuses up front a VM this host cannot hold: its memory in use at the
 * source (ST_CFG_RESIDENT; an older source does not send it) must leave
 * min_free of MemAvailable. Pages first touched during the migration are
 * not foreseen: a guard against an overcommitted host, not a promise.
 */
static int recv__memory_fits(struct recv *rv, const uint8_t *p, uint32_t len)
{
	uint64_t resident, avail;

	if (rec_find_u64(p, len, ST_CFG_RESIDENT, &resident) != 0 ||
	    !(avail = recv__mem_available()))
		return 0;
	if (resident <= avail && avail - resident >= rv->in->min_free)
		return 0;
	return recv__fail(rv, KM_ERR_TOO_LARGE, "not enough memory here: the VM has %llu MiB in "
			  "use, this host has %llu MiB available and keeps %llu MiB free "
			  "(kvm-migrated --min-free)", (unsigned long long)(resident >> 20),
			  (unsigned long long)(avail >> 20),
			  (unsigned long long)(rv->in->min_free >> 20));
}

static int recv__config(struct recv *rv)
{
	struct kvm_config cfg = { .irqchip = true, .dirty_backend = DIRTY_DEFAULT };
	char why[160] = "";
	const uint8_t *p;
	uint32_t type, len;
	int r;

	if ((r = stream_get(rv->s, 64 * 1024, &type, &p, &len)) != 0)
		return recv__fail(rv, r, "reading the VM config: %s", km_strerror(r));
	if (type != REC_VM_CONFIG)
		return recv__fail(rv, KM_ERR_CORRUPT, "expected the VM config, got record type %u",
				  type);
	if ((r = vmrec_parse_config(p, len, &cfg, rv->in->name, sizeof(rv->in->name),
				    RECV_MAX_MEM, rv->why, sizeof(rv->why))) != 0)
		return r;
	if ((r = recv__memory_fits(rv, p, len)) != 0)
		return r;
	if (rv->in->admit && (r = rv->in->admit(cfg.mem_size, rv->in->ctx, why, sizeof(why))) != 0)
		return recv__fail(rv, r, "%s", r == KM_ERR_REFUSED ? why : km_strerror(r));
	if (rv->in->rundir && (r = rundir_reserve(rv->in->rundir, rv->in->name, &rv->name,
						  rv->in->reserve_wait_ms)) != 0)
		return recv__fail(rv, r, r == KM_ERR_STATE ?
				  "a VM named %s already runs here, or is arriving" :
				  "cannot reserve the name %s here: %s", rv->in->name, km_strerror(r));
	cfg.name = rv->in->name;
	cfg.console_path = rv->in->console_path;
	r = vmrec_create(&cfg, p, len, &rv->kvm, rv->why, sizeof(rv->why));
	if (rv->kvm) {
		/* The VM holds its name from now on, until it stops or leaves. */
		rv->kvm->reservation = rv->name;
		rundir_name_init(&rv->name);
	}
	if (r != 0)
		return r;
	if ((r = vmrec_load_init(&rv->ld, rv->kvm, rv->in->caps & STREAM_CAP_LZ4)) != 0)
		return recv__fail(rv, r, "out of memory");
	/* The one info line per migration is its outcome (migrate__receive). */
	log_debug("incoming VM %s from %s: %llu MiB, %u vCPU%s", rv->in->name, rv->in->peer,
		  (unsigned long long)(cfg.mem_size >> 20), cfg.nr_vcpus,
		  cfg.nr_vcpus > 1 ? "s" : "");
	return 0;
}

static int recv__end(struct recv *rv, const uint8_t *p, uint32_t len)
{
	int r = rec_find_u64(p, len, 1, &rv->pause_realtime_ns), r2;

	/* Both are optional: no TSC adjustment, running. */
	r2 = rec_find_u64(p, len, 2, &rv->paused);
	if ((r != 0 && r != KM_ERR_END) || (r2 != 0 && r2 != KM_ERR_END))
		return recv__fail(rv, KM_ERR_CORRUPT, "corrupt end record");
	return 0;
}

/*
 * The source sends a round's records without waiting for us, then waits
 * for REC_ROUND_ACK: read ahead on a thread (decrypt, checksums) while
 * this one applies pages, up to the round's end.
 */
static int recv__read_ahead(struct recv *rv)
{
	return stream_start_reader(rv->s, REC_MAX_PAYLOAD, (1U << REC_END) | (1U << REC_ERROR) |
				   (1U << REC_ROUND_END));
}

/* Pages and state until REC_END. */
static int recv__stream(struct recv *rv)
{
	const uint8_t *p;
	uint32_t type, len;
	int r;

	for (;;) {
		if ((r = stream_get(rv->s, REC_MAX_PAYLOAD, &type, &p, &len)) != 0)
			return recv__fail(rv, r, "stream: %s", km_strerror(r));
		if (rv->in->deadline_ns && kvm__now_ns() > rv->in->deadline_ns)
			return recv__fail(rv, KM_ERR_TIMEOUT, "still arriving at its deadline");
		switch (type) {
		case REC_PAGES:
			if ((r = vmrec_load_pages(&rv->ld, p, len)) != 0)
				return recv__fail(rv, r, "%s", rv->ld.why);
			break;
		case REC_ROUND_END:
			/* Every page before it is applied: say so (the read-ahead stopped here). */
			rv->rounds++;
			if (rv->in->max_rounds && rv->rounds > rv->in->max_rounds)
				return recv__fail(rv, KM_ERR_TOO_LARGE, "more than %llu pre-copy rounds "
						  "(kvm-migrated --max-rounds)",
						  (unsigned long long)rv->in->max_rounds);
			if ((r = stream_put(rv->s, REC_ROUND_ACK, NULL, 0)) != 0 ||
			    (r = stream_flush(rv->s)) != 0 ||
			    (r = recv__read_ahead(rv)) != 0)
				return recv__fail(rv, r, "acknowledging round %llu: %s",
						  (unsigned long long)rv->rounds, km_strerror(r));
			break;
		case REC_VM_CONFIG:
		case REC_VM_STATE:
		case REC_VCPU_STATE:
			/* Applied as it comes: the source sends it paused, after the last pages. */
			if ((r = vmrec_load_state(&rv->ld, type, p, len)) != 0)
				return recv__fail(rv, r, "%s", rv->ld.why);
			break;
		case REC_END:
			return recv__end(rv, p, len);
		case REC_ERROR: {
			char text[200];

			migrate__error_text(p, len, text, sizeof(text));
			return recv__fail(rv, KM_ERR_CANCELED, "the source gave up: %s", text);
		}
		default:
			/* A newer source's record we need not understand (docs/format.md s.6). */
			if (stream_skippable(rv->s, type))
				break;
			return recv__fail(rv, KM_ERR_CORRUPT, "unexpected record type %u", type);
		}
	}
}


/*
 * The guest's TSC was read at the source and stood still until it was
 * loaded here (from then on KVM lets it tick): move it on by that gap so
 * the guest sees the time it really lost. Across hosts this relies on
 * their wall clocks agreeing (NTP), as kvmclock migration does; a gap
 * that is negative or absurd is ignored.
 */
static void recv__advance_tsc(struct recv *rv)
{
	uint64_t now = kvm__wall_ns();

	if (rv->pause_realtime_ns && now > rv->pause_realtime_ns &&
	    now - rv->pause_realtime_ns < 60ULL * 1000000000ULL)
		state__advance_tsc(rv->kvm, now - rv->pause_realtime_ns);
}

/*
 * After RUNNING: once every vCPU reported progress (at most a second:
 * guests report every 100 ms), tell the source the longest stall the
 * guest measured, which includes the downtime it felt.
 */
/* Field 2 of REC_GUEST_REPORT: the progress reports since the VM resumed here. */
static int recv__put_progress(struct recv *rv, struct buf *out)
{
	struct progress_sample *v = calloc(MIGRATE_PROGRESS_MAX, sizeof(*v));
	struct buf *f = buf_new(MIGRATE_PROGRESS_MAX * MIGRATE_PROGRESS_ENTRY);
	/* Their times are this host's CLOCK_MONOTONIC: the source lines them up by the wall clock. */
	uint64_t to_wall = kvm__wall_ns() - kvm__now_ns();
	size_t i, n;
	int r = -ENOMEM;

	if (!v || !f)
		goto out;
	n = progress__samples(&rv->kvm->progress, rv->resume_ns, v, MIGRATE_PROGRESS_MAX);
	for (i = 0, r = 0; i < n && r == 0; i++)
		r = migrate__put_progress_entry(f, &(struct migrate_progress){
			.wall_ns = v[i].host_ns + to_wall, .counter = v[i].counter,
			.vcpu = v[i].vcpu });
	if (r == 0)
		r = rec_put_field(out, 2, buf_ptr(f), (uint32_t)buf_len(f));
out:
	buf_free(f);
	free(v);
	return r;
}

/*
 * REC_GUEST_REPORT: once every vCPU reported after resuming (a second at
 * most), the longest stall the guest measured; with the progress reports
 * of the window REC_GO asked for, once it is over.
 */
static void recv__guest_report(struct recv *rv)
{
	struct kvm *kvm = rv->kvm;
	struct progress_vcpu pv;
	uint64_t deadline = kvm__now_ns() + 1000000000ULL, max_tsc = 0, until, now;
	unsigned int i, reported;
	struct buf *p;

	if (kvm->linux_guest)
		return;		/* only the workload guests report progress */
	until = rv->resume_ns + rv->progress_ms * 1000000ULL;
	if (until > deadline)
		deadline = until;
	for (;;) {
		for (i = reported = 0; i < kvm->nr_cpus; i++) {
			progress__get(&kvm->progress, i, &pv);
			if (pv.reports > 0) {
				reported++;
				if (pv.max_guest_gap_tsc > max_tsc)
					max_tsc = pv.max_guest_gap_tsc;
			}
		}
		now = kvm__now_ns();
		if ((reported == kvm->nr_cpus && now >= until) || now > deadline ||
		    kvm->state == KVM_STATE_STOPPED)
			break;
		kvm__wait_stopped(kvm, now + 10000000ULL);	/* a 10 ms poll */
	}
	if (!(p = buf_new(MIGRATE_PROGRESS_MAX * MIGRATE_PROGRESS_ENTRY + 64)))
		return;
	if (reported > 0 && kvm->tsc_khz &&
	    rec_put_field_u64(p, 1, (uint64_t)((double)max_tsc * 1e6 / (double)kvm->tsc_khz)) != 0)
		goto out;
	if (rv->progress_ms && recv__put_progress(rv, p) != 0)
		goto out;
	if (buf_len(p) && stream_put(rv->s, REC_GUEST_REPORT, buf_ptr(p), (uint32_t)buf_len(p)) == 0)
		(void)stream_flush(rv->s);
out:
	buf_free(p);
}

/* READY, wait for GO, resume, RUNNING. */
static int recv__switchover(struct recv *rv)
{
	const uint8_t *p;
	uint32_t type, len;
	int r;

	/* Fault injection for the tests (docs/protocol.md): a destination that hangs. */
	if (migrate__fault("hang-before-ready")) {
		log_warn("KVM_MIGRATE_FAULT=hang-before-ready: hanging as a stuck host would");
		for (;;)
			pause();
	}
	/* Field 1: the CPU time this end spent receiving, for the source's report. */
	if ((r = migrate__send_u64(rv->s, REC_READY, kvm__thread_cpu_ns() - rv->cpu0_ns +
						  stream_threads_cpu_ns(rv->s))) != 0)
		return recv__fail(rv, r, "sending ready: %s", km_strerror(r));
	/*
	 * Fault injection for the tests (docs/protocol.md): die as a crash
	 * would, right after ready, leaving the source to settle the outcome.
	 */
	if (migrate__fault("exit-after-ready")) {
		log_warn("KVM_MIGRATE_FAULT=exit-after-ready: exiting as a crash would");
		_exit(9);
	}
	if ((r = stream_get(rv->s, 4096, &type, &p, &len)) != 0)
		return recv__fail(rv, r, "waiting for go: %s", km_strerror(r));
	if (type == REC_ERROR) {
		char text[200];

		migrate__error_text(p, len, text, sizeof(text));
		return recv__fail(rv, KM_ERR_CANCELED, "the source cancelled before go: %s", text);
	}
	if (type != REC_GO)
		return recv__fail(rv, KM_ERR_CORRUPT, "expected go, got record type %u", type);
	/* Field 1 (optional): the source wants the guest's progress reports this long after. */
	if (rec_find_u64(p, len, 1, &rv->progress_ms) != 0)
		rv->progress_ms = 0;
	if (rv->progress_ms > MIGRATE_PROGRESS_MAX_MS)
		rv->progress_ms = MIGRATE_PROGRESS_MAX_MS;
	/*
	 * The VM becomes visible (its socket), then the decision that it runs
	 * here is taken, then it starts. A status query that came first (the
	 * source lost the link, asked, and was told "not here") has decided
	 * that it never will: then it must not (docs/protocol.md s.6).
	 */
	/* The disk's lock, which the source gave up before go (x86/pc.h). */
	if ((r = pc__disk_take(rv->kvm)) != 0)
		return recv__fail(rv, r, "cannot take the disk's lock: %s", r == -EBUSY ?
				  "another process holds it" : km_strerror(r));
	if (rv->in->on_publish && (r = rv->in->on_publish(rv->kvm, rv->in->ctx)) != 0)
		return recv__fail(rv, r, "cannot publish the VM's control socket: %s",
				  km_strerror(r));
	if (rv->in->rundir && (r = rundir_decide_running(&rv->kvm->reservation)) != 0)
		return recv__fail(rv, r == KM_ERR_CANCELED ? KM_ERR_STATE : r, "%s",
				  r == KM_ERR_CANCELED ? "a status query settled first that the VM "
				  "does not run here: it never will" : km_strerror(r));
	rv->resume_ns = kvm__now_ns();
	r = rv->paused ? kvm__start_paused(rv->kvm) : kvm__start(rv->kvm);
	if (r != 0)
		return recv__fail(rv, r, "cannot start the vCPUs: %s", km_strerror(r));
	/* The VM runs: from here on it is the only copy that may run, whatever the link does. */
	if ((r = stream_put(rv->s, REC_RUNNING, NULL, 0)) != 0 || (r = stream_flush(rv->s)) != 0)
		log_warn("VM %s runs here, but the source was not told (%s); it stays paused "
			 "there until asked", rv->in->name, km_strerror(r));
	else if (!rv->paused)
		recv__guest_report(rv);
	return 0;
}

int migrate__receive(struct stream *s, struct migrate_incoming *in, struct kvm **out)
{
	struct recv rv = { .s = s, .in = in, .cpu0_ns = kvm__thread_cpu_ns() };
	int r;

	rundir_name_init(&rv.name);
	*out = NULL;
	if ((r = recv__config(&rv)) != 0)
		goto out;
	/* Field 1: the caps accepted (the source uses no others). */
	if ((r = migrate__send_u64(rv.s, REC_ACCEPT, in->caps)) != 0) {
		recv__fail(&rv, r, "sending accept: %s", km_strerror(r));
		goto out;
	}
	if ((r = recv__read_ahead(&rv)) != 0) {
		recv__fail(&rv, r, "starting the reader: %s", km_strerror(r));
		goto out;
	}
	if ((r = recv__stream(&rv)) != 0)
		goto out;
	if ((r = vmrec_load_done(&rv.ld)) != 0) {
		recv__fail(&rv, r, "%s", rv.ld.why);
		goto out;
	}
	recv__advance_tsc(&rv);
	if ((r = recv__switchover(&rv)) != 0)
		goto out;
	log_info("VM %s from %s runs here: %llu MiB, %u vCPU%s, %llu pages in %llu rounds",
		 in->name, in->peer, (unsigned long long)(rv.kvm->mem.size >> 20),
		 rv.kvm->nr_cpus, rv.kvm->nr_cpus > 1 ? "s" : "", (unsigned long long)rv.ld.pages,
		 (unsigned long long)rv.rounds);
	*out = rv.kvm;
	rv.kvm = NULL;
out:
	/* Whatever broke at the deadline (the caller cut the link then), that is why. */
	if (r != 0 && in->deadline_ns && kvm__now_ns() >= in->deadline_ns)
		recv__fail(&rv, KM_ERR_TIMEOUT, "the migration was still arriving at its deadline "
			   "(kvm-migrated --max-receive-time)");
	if (r != 0) {
		log_error("incoming VM %s from %s refused: %s", in->name[0] ? in->name : "?",
			  in->peer, rv.why[0] ? rv.why : km_strerror(r));
		if (r != KM_ERR_CANCELED)
			migrate__send_error(s, r, rv.why[0] ? rv.why : km_strerror(r));
	}
	kvm__destroy(rv.kvm);
	rundir_release(&rv.name);
	vmrec_load_free(&rv.ld);
	return r;
}
