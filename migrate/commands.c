/*
 * The migration's control commands (docs/control.md): migrate,
 * query-migrate, migrate-cancel, migrate-settle. Served by the VM's
 * control thread through kvm/control.h's extension table.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "qmp.h"
#include "kvm/control.h"
#include "kvm/dirtylimit.h"
#include "kvm/kvm.h"
#include "migrate/migrate.h"
#include "migrate/policy.h"

json_t *migrate__stats_json(const struct migrate_stats *st)
{
	double ratio = st->raw_bytes && st->wire_bytes ?
		       (double)st->raw_bytes / (double)st->wire_bytes : 0.0;

	return json_pack("{s:s, s:s, s:s, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:f, s:i, s:I, s:I,"
			 " s:I, s:I, s:I, s:I, s:f, s:i, s:f, s:f, s:f, s:f, s:I}",
			 "status", migrate__status_name(st->status),
			 "error", st->error,
			 "uri", st->uri,
			 "total-time", (double)st->total_ns / 1e6,
			 "setup-time", (double)st->setup_ns / 1e6,
			 "downtime", (double)st->downtime_ns / 1e6,
			 "expected-downtime", (double)st->expected_downtime_ns / 1e6,
			 "transferred", (json_int_t)st->wire_bytes,
			 "remaining", (json_int_t)(st->remaining_pages * 4096),
			 "dirty-pages-rate", (json_int_t)st->dirty_pages_rate,
			 "mbps", st->mbps,
			 "rounds", (int)st->rounds,
			 "pages", (json_int_t)st->pages,
			 "zero", (json_int_t)st->zero,
			 "normal", (json_int_t)st->raw,
			 "compressed", (json_int_t)st->lz4,
			 "skipped", (json_int_t)st->skipped_pages,
			 "raw-bytes", (json_int_t)st->raw_bytes,
			 "compression-ratio", ratio,
			 "throttle-percentage", (int)st->throttle_pct,
			 "dirty-limit", st->dirty_limit_mbps,
			 "guest-stall", (double)st->guest_stall_ns / 1e6,
			 "source-cpu-time", (double)st->source_cpu_ns / 1e6,
			 "destination-cpu-time", (double)st->destination_cpu_ns / 1e6,
			 "start-wall-ns", (json_int_t)st->start_wall_ns);
}

static char *cmd_migrate(void *ctx, const struct qmp_request *req)
{
	struct kvm *kvm = ctx;
	struct migrate_params p;
	const char *uri = NULL, *tls = NULL, *on_limit = NULL;
	int insecure = 0, compress = 1, autoc = 0;
	json_int_t max_throttle = 0;
	double dlimit = 0;
	json_int_t downtime = MIGRATE_DEFAULT_DOWNTIME_MS, bw = 0;
	json_int_t rounds = MIGRATE_DEFAULT_MAX_ROUNDS, timeout = MIGRATE_DEFAULT_TIMEOUT_MS;
	json_int_t io_timeout = MIGRATE_IO_TIMEOUT_MS, dprog = 0;
	json_error_t jerr;
	int r;

	migrate__default_params(&p);
	if (json_unpack_ex(req->arguments, &jerr, JSON_STRICT,
			   "{s:s, s?s, s?b, s?b, s?I, s?I, s?b, s?I, s?F, s?I, s?I, s?s, s?I, s?I}",
			   "uri", &uri, "tls-dir", &tls, "insecure", &insecure,
			   "compress", &compress, "downtime-ms", &downtime,
			   "bandwidth", &bw, "auto-converge", &autoc,
			   "max-throttle", &max_throttle, "dirty-limit", &dlimit,
			   "max-rounds", &rounds, "timeout-ms", &timeout,
			   "on-limit", &on_limit, "io-timeout-ms", &io_timeout,
			   "destination-progress-ms", &dprog) != 0) {
		char desc[300];

		snprintf(desc, sizeof(desc), "arguments: %s (see docs/control.md)", jerr.text);
		return qmp_reply_error("GenericError", desc, req->id);
	}
	if (strlen(uri) >= sizeof(p.uri) || (tls && strlen(tls) >= sizeof(p.tls_dir)) ||
	    downtime < 1 || downtime > 60000 || bw < 0 || rounds < 1 || rounds > 100000 ||
	    timeout < 0 || io_timeout < 100 || io_timeout > 3600000 ||
	    (on_limit && strcmp(on_limit, "cancel") && strcmp(on_limit, "force")) ||
	    dprog < 0 || dprog > MIGRATE_PROGRESS_MAX_MS)
		return qmp_reply_error("GenericError",
				       "uri or tls-dir too long, or downtime-ms not 1..60000, bandwidth "
				       "negative, max-rounds not 1..100000, io-timeout-ms not 100..3600000, "
				       "on-limit not cancel|force, destination-progress-ms not 0..5000",
				       req->id);
	if (max_throttle < 0 || max_throttle > POLICY_THROTTLE_MAX ||
	    (dlimit != 0 && !(dlimit >= DIRTYLIMIT_MIN_MBPS && dlimit <= DIRTYLIMIT_MAX_MBPS)))
		return qmp_reply_error("GenericError", "max-throttle not 1..99 or dirty-limit not "
				       "0.01..1000000 (MB/s)", req->id);
	/* QEMU too refuses dirty-limit without the dirty ring, before it starts. */
	if (dlimit && kvm->dirty.backend != DIRTY_RING)
		return qmp_reply_error("GenericError", "dirty-limit needs the dirty-ring backend "
				       "(kvm-run --dirty-log ring)", req->id);
	snprintf(p.uri, sizeof(p.uri), "%s", uri);
	if (tls)
		snprintf(p.tls_dir, sizeof(p.tls_dir), "%s", tls);
	p.insecure = insecure;
	p.compress = compress;
	p.downtime_ms = (uint64_t)downtime;
	p.bandwidth = (uint64_t)bw;
	p.auto_converge = autoc;
	p.max_throttle = (unsigned int)max_throttle;
	p.dirty_limit_mbps = dlimit;
	p.max_rounds = (unsigned int)rounds;
	p.timeout_ms = (uint64_t)timeout;
	p.io_timeout_ms = (uint64_t)io_timeout;
	p.dest_progress_ms = (uint64_t)dprog;
	p.on_limit = on_limit && !strcmp(on_limit, "force") ? MIGRATE_LIMIT_FORCE
							      : MIGRATE_LIMIT_CANCEL;
	if ((r = migrate__start(kvm, &p)) != 0)
		return qmp_reply_error("GenericError", r == KM_ERR_STATE ?
				       "a migration is already in progress, done, or the VM is not running" :
				       km_strerror(r), req->id);
	return qmp_reply_return(NULL, req->id);
}

/* Trace rows per reply at most: a reply stays far below QMP_MAX_LINE. */
#define TRACE_ROWS_PER_REPLY	256

static char *cmd_query_migrate(void *ctx, const struct qmp_request *req)
{
	struct migrate_stats st;
	json_int_t from = 0;
	unsigned int total;
	int trace = 0, dprog = 0;
	json_t *o;

	if (json_unpack(req->arguments, "{s?b, s?I, s?b !}", "trace", &trace, "trace-from", &from,
			"destination-progress", &dprog) != 0 || from < 0 || from > 1000000)
		return qmp_reply_error("GenericError", "arguments: {\"trace\": bool, \"trace-from\": "
				       "row index, \"destination-progress\": bool} (all optional)",
				       req->id);
	/*
	 * The status and the rows are read in one reply: a source whose
	 * migration completed stops once a client has read that status.
	 */
	migrate__get_stats(ctx, &st);
	o = migrate__stats_json(&st);
	if (o && trace) {
		json_object_set_new(o, "trace", migrate__trace_json(ctx, (unsigned int)from,
								    TRACE_ROWS_PER_REPLY, &total));
		json_object_set_new(o, "trace-total", json_integer(total));
	}
	if (o && dprog)
		json_object_set_new(o, "destination-progress", migrate__dest_progress_json(ctx));
	return qmp_reply_return(o, req->id);
}

static char *cmd_migrate_cancel(void *ctx, const struct qmp_request *req)
{
	if (migrate__cancel(ctx) != 0)
		return qmp_reply_error("GenericError",
				       "no migration to cancel (none running, or past the switchover)",
				       req->id);
	return qmp_reply_return(NULL, req->id);
}

static char *cmd_migrate_settle(void *ctx, const struct qmp_request *req)
{
	int there = 0;

	if (json_unpack(req->arguments, "{s:b !}", "running-there", &there) != 0)
		return qmp_reply_error("GenericError", "arguments: {\"running-there\": bool}",
				       req->id);
	if (migrate__settle(ctx, there) != 0)
		return qmp_reply_error("GenericError", "the migration's outcome is not unknown",
				       req->id);
	return qmp_reply_return(NULL, req->id);
}

/* ctx is filled in by migrate__control_table. */
static struct control_cmd table[] = {
	{ "migrate", cmd_migrate, NULL, false },
	{ "query-migrate", cmd_query_migrate, NULL, false },
	{ "migrate-cancel", cmd_migrate_cancel, NULL, false },
	{ "migrate-settle", cmd_migrate_settle, NULL, false },
	{ NULL, NULL, NULL, false },
};

const struct control_cmd *migrate__control_table(struct kvm *kvm)
{
	unsigned int i;

	for (i = 0; table[i].name; i++)
		table[i].ctx = kvm;
	return table;
}
