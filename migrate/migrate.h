/*
 * Pre-copy live migration (DESIGN.md s.8, docs/protocol.md).
 *
 * The sending side runs inside the VM's own process (kvm-run, or a VM that
 * kvm-migrated received): the control commands `migrate`,
 * `query-migrate` and `migrate-cancel` (migrate/commands.c) drive one
 * migration thread per VM. The receiving side runs in a child of
 * kvm-migrated, which becomes the VM once it says it is running.
 */
#ifndef KM_MIGRATE_H
#define KM_MIGRATE_H

#include "config.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "chan.h"

struct buf;

struct kvm;
struct control_cmd;

#define MIGRATE_DEFAULT_DOWNTIME_MS	50
#define MIGRATE_DEFAULT_MAX_ROUNDS	30
#define MIGRATE_DEFAULT_TIMEOUT_MS	(10 * 60 * 1000)
#define MIGRATE_HANDSHAKE_MS		10000	/* connect, TLS, accept */
#define MIGRATE_IO_TIMEOUT_MS		30000	/* a silent peer is a dead peer */
#define MIGRATE_MIN_FREE		(256ULL << 20)	/* a destination keeps this available */

enum migrate_on_limit {
	MIGRATE_LIMIT_CANCEL,	/* give up: the source keeps running (default) */
	MIGRATE_LIMIT_FORCE,	/* stop and copy whatever remains */
};

struct migrate_params {
	char uri[256];		/* "HOST[:PORT]", "unix:PATH" */
	char tls_dir[256];	/* x509 directory; "" with insecure */
	bool insecure;		/* plain TCP (explicit --insecure only) */
	bool compress;		/* lz4 pages (default on) */
	uint64_t downtime_ms;	/* stop-and-copy when expected downtime fits */
	uint64_t bandwidth;	/* bytes/s on the wire, 0: unlimited */
	bool auto_converge;
	unsigned int max_throttle;	/* auto-converge's cap, 1..99 %; 0: 99 */
	double dirty_limit_mbps;	/* per-vCPU dirty limit when the guest outruns the link; 0: none */
	unsigned int max_rounds;
	uint64_t timeout_ms;
	enum migrate_on_limit on_limit;
	uint64_t io_timeout_ms;	/* a peer silent this long is gone */
	uint64_t dest_progress_ms;	/* the guest's progress reports there this long after (0: none) */
};

enum migrate_status {
	MIGRATE_NONE,		/* never started */
	MIGRATE_SETUP,		/* connecting, TLS, config accepted? */
	MIGRATE_ACTIVE,		/* pre-copy rounds */
	MIGRATE_DEVICE,		/* paused: final pages and state */
	MIGRATE_COMPLETED,	/* the destination runs the VM; this one stops */
	MIGRATE_FAILED,		/* nothing changed: the source runs (or stays paused) */
	MIGRATE_CANCELLED,
	MIGRATE_UNKNOWN,	/* link lost after go: source paused, ask the destination */
};

/* Live numbers, in QEMU's vocabulary where it applies (docs/control.md). */
struct migrate_stats {
	enum migrate_status status;
	char error[256];
	char uri[256];			/* where it goes (the migrate command's uri) */
	uint64_t start_ns, setup_ns, total_ns;
	uint64_t start_wall_ns;		/* CLOCK_REALTIME at start_ns: to line up with traces */
	uint64_t downtime_ns;		/* paused to destination running */
	uint64_t expected_downtime_ns;
	uint64_t wire_bytes;		/* record bytes sent (before TLS) */
	uint64_t remaining_pages;	/* dirty, not yet sent */
	uint64_t pages, zero, raw, lz4, raw_bytes;
	uint64_t dirty_pages_rate;	/* pages/s in the last round */
	double mbps;			/* wire megabits/s in the last round */
	unsigned int rounds;
	unsigned int throttle_pct;
	double dirty_limit_mbps;	/* the per-vCPU dirty limit it put on (0: none) */
	uint64_t skipped_pages;		/* never touched: not sent at all */
	uint64_t guest_stall_ns;	/* longest stall the guest measured (0: not reported) */
	/*
	 * CPU time spent migrating: the source's migration thread and its
	 * stream writer (not the vCPUs); the destination's receiving threads
	 * from the VM config to ready, as it reports (0: not reported).
	 */
	uint64_t source_cpu_ns, destination_cpu_ns;
};

/* Defaults for every field (the uri is empty). */
void migrate__default_params(struct migrate_params *p);

/*
 * Starts migrating kvm as p says, on a new thread. KM_ERR_STATE if one is
 * already running. The VM must be running or paused.
 */
int migrate__start(struct kvm *kvm, const struct migrate_params *p);
/* A consistent copy of the current (or last) migration's numbers. */
void migrate__get_stats(struct kvm *kvm, struct migrate_stats *out);
/* Asks a running migration to stop before `go`; KM_ERR_STATE if none or past go. */
int migrate__cancel(struct kvm *kvm);
/*
 * After MIGRATE_UNKNOWN: the client learned where the VM runs. running_there:
 * stop this copy for good; else resume it here.
 */
int migrate__settle(struct kvm *kvm, bool running_there);
/* Waits for the migration thread (at exit). */
void migrate__shutdown(struct kvm *kvm);

const char *migrate__status_name(enum migrate_status s);
/*
 * One object per round (start, duration, dirty pages, pages and bytes
 * sent, throttle), for rows from..from+max-1; *total: rows kept so far.
 */
/*
 * The guest's progress reports at the destination after the switchover (as
 * the migrate command's destination-progress-ms asked), one object each:
 * ms since the VM started here (lined up by the wall clock), vcpu, counter.
 */
json_t *migrate__dest_progress_json(struct kvm *kvm);
json_t *migrate__trace_json(struct kvm *kvm, unsigned int from, unsigned int max,
			    unsigned int *total);
json_t *migrate__stats_json(const struct migrate_stats *st);

/*
 * The control commands of kvm (migrate, query-migrate, migrate-cancel,
 * migrate-settle), for control__start_ext.
 */
const struct control_cmd *migrate__control_table(struct kvm *kvm);

/*
 * The receiving side, in the process that will become the VM: reads a
 * migration stream from s (its header already checked by the caller),
 * builds the VM, answers ready, waits for go, resumes it and answers
 * running. On success *out is the running VM (threads started) and
 * *name is its name. Any failure before running destroys what was built
 * and reports the reason to the peer (REC_ERROR) when the link allows.
 */
struct migrate_incoming {
	const char *console_path;	/* NULL: stderr */
	char name[64];			/* out: the VM's name */
	char peer[CHAN_ERR_MAX];	/* in: who sent it, for logs */
	/*
	 * in: the caps this end accepts of those the source offered
	 * (STREAM_CAP_*); sent back in REC_ACCEPT, and the stream is held to them.
	 */
	uint64_t caps;
	/*
	 * in: refuse a VM whose memory in use (ST_CFG_RESIDENT, if the source
	 * sent it) would leave less than this of the host's MemAvailable.
	 */
	uint64_t min_free;
	/*
	 * in: the run directory where the VM's name is reserved (lib/rundir.h)
	 * from the moment its config is accepted: a name held there is refused,
	 * and the VM starts only if no status query decided first that it
	 * never will (docs/protocol.md s.6). NULL: no reservation. A receiver
	 * of an earlier migration that still holds the name without having
	 * switched over is decided out (it will never start) and awaited for up
	 * to reserve_wait_ms (its own I/O timeout ends it).
	 */
	const char *rundir;
	unsigned int reserve_wait_ms;
	/*
	 * Called on go, before the vCPUs start: publishes the VM's control
	 * socket, so that it exists by the time the migration is reported
	 * complete. A failure refuses the start (the source is told and
	 * resumes). May be NULL.
	 */
	int (*on_publish)(struct kvm *kvm, void *ctx);
	/*
	 * Asked once the config is read, with the VM's whole guest memory: 0
	 * to go on, or a refusal with its reason in why (kvm-migrated's receive
	 * slots and guest memory budget, admit.h). May be NULL.
	 */
	int (*admit)(uint64_t guest_bytes, void *ctx, char *why, size_t whylen);
	/*
	 * in: a receive still under way at deadline_ns (kvm__now_ns), or past
	 * max_rounds rounds, is refused, whatever pace the peer keeps (0: no
	 * bound). The caller enforces the deadline inside reads as well
	 * (chan_abort); the receive then names it as the reason.
	 */
	uint64_t deadline_ns, max_rounds;
	void *ctx;
};
struct stream;
int migrate__receive(struct stream *s, struct migrate_incoming *in, struct kvm **out);
/*
 * Whether KVM_MIGRATE_FAULT names this fault (test injection, docs/protocol.md
 * s.5). Only in builds configured with --enable-fault-injection (the tests'):
 * elsewhere a constant false, so that the fault points and their texts are
 * not in the binary and an inherited variable changes nothing.
 */
#ifdef KM_FAULT_INJECTION
bool migrate__fault(const char *name);
#else
#define migrate__fault(name) false
#endif

/*
 * A VM name carried in field tag of a payload (the config's ST_CFG_NAME, a
 * query's field 1), into name (max bytes with the NUL): 0, or
 * KM_ERR_CORRUPT if absent, too long or not a valid name (rundir.h).
 */
int migrate__name_field(const uint8_t *p, uint32_t len, uint32_t tag, char *name, size_t max);
/* The text of a REC_ERROR payload (field 2), made printable. */
void migrate__error_text(const uint8_t *p, uint32_t len, char *out, size_t outlen);
/* Sends REC_ERROR (code, text) and flushes, best effort. */
void migrate__send_error(struct stream *s, int code, const char *text);
/* Queues a record of type whose payload is one u64 field 1 / and flushes. */
int migrate__put_u64(struct stream *s, uint32_t type, uint64_t v);
int migrate__send_u64(struct stream *s, uint32_t type, uint64_t v);

/*
 * The guest's progress reports after the switchover, which the destination
 * sends in REC_GUEST_REPORT's field 2 when the source's REC_GO asked for
 * them (field 1: for how many ms after the VM resumed; docs/protocol.md):
 * entries of MIGRATE_PROGRESS_ENTRY bytes, each the report's time
 * (CLOCK_REALTIME ns), the counter and the vCPU, little-endian.
 */
#define MIGRATE_PROGRESS_ENTRY		24
#define MIGRATE_PROGRESS_MAX		1024	/* entries in one report (a QMP reply of them fits its line) */
#define MIGRATE_PROGRESS_MAX_MS		5000	/* the longest window asked for */
struct migrate_progress {
	uint64_t wall_ns, counter;
	uint32_t vcpu;
};
int migrate__put_progress_entry(struct buf *b, const struct migrate_progress *e);
/* Entry i of a field of len bytes (i < len / MIGRATE_PROGRESS_ENTRY). */
void migrate__progress_entry(const uint8_t *field, size_t i, struct migrate_progress *e);

#endif
