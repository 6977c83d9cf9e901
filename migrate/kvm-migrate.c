/*
 * kvm-migrate SRC DST: tells VM SRC (a name in the run directory, or a
 * control-socket path) to migrate to DST (HOST[:PORT] of a kvm-migrated,
 * or unix:PATH), shows progress, and reports (docs/kvm-migrate.1).
 *
 * Exit status: 0 migrated; 1 the migration failed or was cancelled (the
 * source VM runs on); 2 bad command line; 3 the source VM cannot be
 * reached; 4 the outcome could not be settled (see the message).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "parse.h"
#include "record.h"
#include "rundir.h"
#include "stream.h"
#include "migrate/migrate.h"
#include "migrate/cli.h"
#include "migrate/qmpc.h"

#define EXIT_FAILED	1
#define EXIT_USAGE	2
#define EXIT_SOURCE	3
#define EXIT_UNSETTLED	4
#define POLL_MS		50
/* --progress: the guest's reports at the destination this long after the switchover. */
#define PROGRESS_AFTER_MS	500

struct options {
	const char *src, *dst, *rundir, *tls_dir, *trace, *progress;
	json_t *args;		/* the migrate command's arguments */
	int json, quiet;
	int ask;		/* --ask: only ask DST's daemon whether SRC (a name) runs there */
};

volatile sig_atomic_t interrupted;

void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: kvm-migrate [OPTION]... SRC DST\n"
"       kvm-migrate dirty-rate VM [OPTION]...   (--help: its options)\n"
"       kvm-migrate trace FILE [--json | --csv]\n"
"       kvm-migrate simulate FILE --bandwidth RATE [OPTION]...   (--help: its options)\n"
"Live-migrate VM SRC (a name, or a control socket path) to DST: HOST[:PORT]\n"
"of a kvm-migrated (default port %d), or unix:PATH; or save it live to\n"
"file:DIR, a checkpoint directory (kvm-run --restore DIR), while it runs on.\n"
"dirty-rate measures how fast VM writes its memory; trace shows a dirty trace\n"
"(kvm-run --record-dirty), simulate predicts a migration of its run.\n"
"\n"
"      --tls-dir DIR       client-cert.pem, client-key.pem, ca-cert.pem\n"
"                          (default /etc/kvm-migrate/x509)\n"
"      --insecure          plain TCP, no TLS (test networks only)\n"
"      --rundir DIR        where SRC's control socket is (default $KVM_MIGRATE_RUNDIR)\n"
"  -d, --downtime-ms N     stop-and-copy once the expected downtime fits (default %d)\n"
"  -b, --bandwidth RATE    cap in bytes/s on the wire, K/M/G suffixes (default none)\n"
"      --auto-converge     throttle the vCPUs when the guest dirties faster than the link\n"
"      --max-throttle PCT  auto-converge's throttle at most PCT %% (1 to 99, default 99)\n"
"      --dirty-limit MB/s  when the guest dirties faster than the link, cap each vCPU's\n"
"                          dirty rate (dirty-ring VMs only; before any --auto-converge)\n"
"      --max-rounds N      pre-copy rounds before giving up (default %d)\n"
"      --timeout S         seconds of pre-copy before giving up (default %d)\n"
"      --io-timeout S      a destination silent this long is gone (default %d)\n"
"      --force             at a limit, stop and copy anyway instead of giving up\n"
"      --no-compress       send pages raw (no lz4)\n"
"      --json              print the final report as one JSON object\n"
"      --ask               do not migrate: ask DST's daemon whether a VM named SRC\n"
"                          runs there (exit 0 yes, 1 no and never will, 4 cannot tell)\n"
"      --trace FILE.csv    one row per pre-copy round\n"
"      --progress FILE.csv the guest's progress reports at the source until the\n"
"                          switchover and at the destination for 500 ms after it\n"
"                          (ms since the VM started, vCPU, counter, host)\n"
"  -q, --quiet             no progress line\n"
"  -h, --help              this help\n"
"\n"
"Exit status: 0 migrated, 1 failed or cancelled (the VM runs on at the source),\n"
"2 usage, 3 SRC unreachable, 4 outcome unknown and not settled.\n",
		CHAN_DEFAULT_PORT, MIGRATE_DEFAULT_DOWNTIME_MS, MIGRATE_DEFAULT_MAX_ROUNDS,
		MIGRATE_DEFAULT_TIMEOUT_MS / 1000, MIGRATE_IO_TIMEOUT_MS / 1000);
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_TLS = 256, OPT_INSECURE, OPT_RUNDIR, OPT_AUTO, OPT_ROUNDS, OPT_TIMEOUT,
	       OPT_FORCE, OPT_NOCOMP, OPT_JSON, OPT_TRACE, OPT_IO_TIMEOUT, OPT_ASK, OPT_PROGRESS,
	       OPT_MAX_THROTTLE, OPT_DIRTY_LIMIT };
	static const struct option longopts[] = {
		{ "tls-dir", required_argument, NULL, OPT_TLS },
		{ "insecure", no_argument, NULL, OPT_INSECURE },
		{ "rundir", required_argument, NULL, OPT_RUNDIR },
		{ "downtime-ms", required_argument, NULL, 'd' },
		{ "bandwidth", required_argument, NULL, 'b' },
		{ "auto-converge", no_argument, NULL, OPT_AUTO },
		{ "max-throttle", required_argument, NULL, OPT_MAX_THROTTLE },
		{ "dirty-limit", required_argument, NULL, OPT_DIRTY_LIMIT },
		{ "max-rounds", required_argument, NULL, OPT_ROUNDS },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "no-compress", no_argument, NULL, OPT_NOCOMP },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "ask", no_argument, NULL, OPT_ASK },
		{ "trace", required_argument, NULL, OPT_TRACE },
		{ "progress", required_argument, NULL, OPT_PROGRESS },
		{ "io-timeout", required_argument, NULL, OPT_IO_TIMEOUT },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	o->args = json_object();
	while ((c = getopt_long(argc, argv, "d:b:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_TLS:
			o->tls_dir = optarg;
			break;
		case OPT_INSECURE:
			json_object_set_new(o->args, "insecure", json_true());
			break;
		case OPT_RUNDIR:
			o->rundir = optarg;
			break;
		case 'd':
			if (parse_u64(optarg, 1, 60000, &v) != 0) {
				fprintf(stderr, "kvm-migrate: --downtime-ms '%s': need 1 to 60000\n", optarg);
				return -1;
			}
			json_object_set_new(o->args, "downtime-ms", json_integer((json_int_t)v));
			break;
		case 'b':
			if (parse_size(optarg, &v) != 0 || v < 4096 || v > (1ULL << 40)) {
				fprintf(stderr, "kvm-migrate: --bandwidth '%s': need bytes/s, at least 4K "
					"(e.g. 100M)\n", optarg);
				return -1;
			}
			json_object_set_new(o->args, "bandwidth", json_integer((json_int_t)v));
			break;
		case OPT_AUTO:
			json_object_set_new(o->args, "auto-converge", json_true());
			break;
		case OPT_MAX_THROTTLE:
			if (parse_u64(optarg, 1, 99, &v) != 0) {
				fprintf(stderr, "kvm-migrate: --max-throttle '%s': need 1 to 99 (%%)\n",
					optarg);
				return -1;
			}
			json_object_set_new(o->args, "max-throttle", json_integer((json_int_t)v));
			break;
		case OPT_DIRTY_LIMIT: {
			char *end;
			double d = strtod(optarg, &end);

			if (end == optarg || *end || !(d >= 0.01 && d <= 1000000)) {
				fprintf(stderr, "kvm-migrate: --dirty-limit '%s': need 0.01 to 1000000 "
					"(MB/s per vCPU)\n", optarg);
				return -1;
			}
			json_object_set_new(o->args, "dirty-limit", json_real(d));
			break;
		}
		case OPT_ROUNDS:
			if (parse_u64(optarg, 1, 100000, &v) != 0) {
				fprintf(stderr, "kvm-migrate: --max-rounds '%s': need 1 to 100000\n", optarg);
				return -1;
			}
			json_object_set_new(o->args, "max-rounds", json_integer((json_int_t)v));
			break;
		case OPT_TIMEOUT:
			if (parse_u64(optarg, 1, 24 * 3600, &v) != 0) {
				fprintf(stderr, "kvm-migrate: --timeout '%s': need 1 to 86400 seconds\n",
					optarg);
				return -1;
			}
			json_object_set_new(o->args, "timeout-ms", json_integer((json_int_t)v * 1000));
			break;
		case OPT_IO_TIMEOUT:
			if (parse_u64(optarg, 1, 3600, &v) != 0) {
				fprintf(stderr, "kvm-migrate: --io-timeout '%s': need 1 to 3600 seconds\n",
					optarg);
				return -1;
			}
			json_object_set_new(o->args, "io-timeout-ms", json_integer((json_int_t)v * 1000));
			break;
		case OPT_FORCE:
			json_object_set_new(o->args, "on-limit", json_string("force"));
			break;
		case OPT_NOCOMP:
			json_object_set_new(o->args, "compress", json_false());
			break;
		case OPT_ASK:
			o->ask = 1;
			break;
		case OPT_JSON:
			o->json = 1;
			break;
		case OPT_TRACE:
			o->trace = optarg;
			break;
		case OPT_PROGRESS:
			o->progress = optarg;
			/* And the destination's reports for a while after the switchover. */
			json_object_set_new(o->args, "destination-progress-ms",
					    json_integer(PROGRESS_AFTER_MS));
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("kvm-migrate (%s)\n", PACKAGE_STRING);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "kvm-migrate: need SRC and DST (see --help)\n");
		return -1;
	}
	o->src = argv[optind];
	o->dst = argv[optind + 1];
	if (o->tls_dir)
		json_object_set_new(o->args, "tls-dir", json_string(o->tls_dir));
	json_object_set_new(o->args, "uri", json_string(o->dst));
	return 0;
}

static double num(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static void progress_line(json_t *st)
{
	fprintf(stderr, "\r%-9s round %3.0f  sent %8.1f MiB  remaining %8.1f MiB  dirty %7.0f p/s  "
		"%8.1f Mb/s  exp. downtime %6.1f ms  throttle %2.0f%%  ",
		str(st, "status"), num(st, "rounds"), num(st, "transferred") / 1048576.0,
		num(st, "remaining") / 1048576.0, num(st, "dirty-pages-rate"), num(st, "mbps"),
		num(st, "expected-downtime"), num(st, "throttle-percentage"));
}

static void report(json_t *st, FILE *f)
{
	fprintf(f,
		"migration %s%s%s\n"
		"  total time        %10.1f ms\n"
		"  setup time        %10.1f ms\n"
		"  downtime          %10.2f ms (source: paused until the destination ran)\n"
		"  guest-seen stall  %10.2f ms (longest gap the guest measured, if it reported)\n"
		"  rounds            %10.0f\n"
		"  on the wire       %10.1f MiB\n"
		"  pages sent        %10.0f (zero %.0f, lz4 %.0f, raw %.0f); never touched, skipped %.0f\n"
		"  compression ratio %10.2f (page bytes / wire bytes)\n"
		"  throttle          %10.0f %%\n"
		"  dirty limit       %10.2f MB/s per vCPU (0: none put on)\n"
		"  CPU time          %10.1f ms at the source, %.1f ms at the destination "
		"(migration threads)\n",
		str(st, "status"), *str(st, "error") ? ": " : "", str(st, "error"),
		num(st, "total-time"), num(st, "setup-time"), num(st, "downtime"),
		num(st, "guest-stall"), num(st, "rounds"), num(st, "transferred") / 1048576.0,
		num(st, "pages"), num(st, "zero"), num(st, "compressed"), num(st, "normal"),
		num(st, "skipped"), num(st, "compression-ratio"), num(st, "throttle-percentage"),
		num(st, "dirty-limit"),
		num(st, "source-cpu-time"), num(st, "destination-cpu-time"));
}

/*
 * --trace: the source's per-round rows as CSV, taken a few at a time with
 * each poll (query-migrate's trace-from), so that the last rows come in
 * the same reply as the final status: a source whose migration completed
 * stops once a client has read that status.
 */
struct trace_out {
	FILE *f;
	unsigned int next;	/* the first row not yet written */
	unsigned int total;	/* rows the source had at the last reply */
};

/* Writes the rows of one query-migrate reply and drops them from it. */
static void trace_take(struct trace_out *tr, json_t *st)
{
	json_t *t = json_object_get(st, "trace"), *row;
	size_t i;

	json_array_foreach(t, i, row) {
		double ms = num(row, "duration-ms");

		fprintf(tr->f, "%.0f,%.3f,%.3f,%.0f,%.0f,%.0f,%.1f,%.0f,%.0f,%.3f,%.0f,%.0f,%.0f\n",
			num(row, "round"), num(row, "start-ms"), ms, num(row, "dirty-pages"),
			num(row, "pages-sent"), num(row, "bytes"),
			ms > 0 ? num(row, "bytes") * 8 / 1e3 / ms : 0.0,
			num(row, "throttle-percentage"), num(row, "remaining-bytes"),
			num(row, "expected-downtime-ms"), num(row, "zero-pages"),
			num(row, "lz4-pages"), num(row, "raw-pages"));
		tr->next++;
	}
	tr->total = (unsigned int)num(st, "trace-total");
	/* The report and --json show the numbers, not the rows. */
	json_object_del(st, "trace");
	json_object_del(st, "trace-total");
}

/*
 * --progress: the source's progress reports (query-progress), taken with
 * each poll before the status (a source whose migration completed stops
 * once that is read), paged by next-since-ns.
 */
struct progress_out {
	FILE *f;
	json_int_t since;
	unsigned long rows;
};

static void progress_take(struct qmpc *q, struct progress_out *po)
{
	json_t *ret = NULL, *row;
	char err[128];
	size_t i, n;

	do {
		if (qmpc_call(q, "query-progress", json_pack("{s:I, s:i}", "since-ns", po->since,
			      "max", 4096), 10000, &ret, err, sizeof(err)) != 0)
			return;
		n = json_array_size(json_object_get(ret, "samples"));
		json_array_foreach(json_object_get(ret, "samples"), i, row) {
			fprintf(po->f, "%.3f,%.0f,%.0f,source\n", num(row, "ms"), num(row, "vcpu"),
				num(row, "counter"));
			po->rows++;
		}
		po->since = (json_int_t)num(ret, "next-since-ns");
		json_decref(ret);
		ret = NULL;
	} while (n == 4096);
}

/* The guest's reports at the destination (in the final status), after the source's. */
static void progress_take_destination(struct progress_out *po, json_t *st)
{
	json_t *row;
	size_t i;

	json_array_foreach(json_object_get(st, "destination-progress"), i, row) {
		fprintf(po->f, "%.3f,%.0f,%.0f,destination\n", num(row, "ms"), num(row, "vcpu"),
			num(row, "counter"));
		po->rows++;
	}
	/* The report and --json show the numbers, not the rows. */
	json_object_del(st, "destination-progress");
}

/*
 * query-migrate, with the next trace rows if --trace asked for them and
 * the destination's progress reports if --progress did.
 */
static int query(struct qmpc *q, struct trace_out *tr, struct progress_out *po, json_t **st,
		 char *err, size_t errlen)
{
	json_t *args = json_object();
	int r;

	if (args && tr->f) {
		json_object_set_new(args, "trace", json_true());
		json_object_set_new(args, "trace-from", json_integer((json_int_t)tr->next));
	}
	if (args && po->f)
		json_object_set_new(args, "destination-progress", json_true());
	r = qmpc_call(q, "query-migrate", args, 10000, st, err, errlen);
	if (r == 0 && tr->f)
		trace_take(tr, *st);
	if (r == 0 && po->f)
		progress_take_destination(po, *st);
	return r;
}

/*
 * Asks the destination daemon whether VM name runs there: 1 yes, 0 no (and
 * never will), <0 cannot tell (the daemon said so, or could not be asked).
 */
static int ask_destination(const struct options *o, const char *name)
{
	char err[CHAN_ERR_MAX] = "";
	struct chan_tls *tls = NULL;
	struct chan *c = NULL;
	struct stream *s = NULL;
	struct buf *q = buf_new(256);
	const uint8_t *p;
	uint32_t type, len;
	uint64_t running = 0;
	int r, insecure = json_is_true(json_object_get(o->args, "insecure"));

	if (!q)
		return -ENOMEM;
	if (strncmp(o->dst, "unix:", 5) && !insecure &&
	    (r = chan_tls_new(o->tls_dir ? o->tls_dir : "/etc/kvm-migrate/x509", false, &tls,
			      err, sizeof(err))) != 0)
		goto out;
	if ((r = chan_connect(o->dst, tls, MIGRATE_HANDSHAKE_MS, &c, err, sizeof(err))) != 0)
		goto out;
	chan_set_timeout(c, MIGRATE_HANDSHAKE_MS);
	if (!(s = stream_new(c))) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = stream_put_header(s, STREAM_QUERY, 0)) || (r = rec_put_field(q, 1, name, (uint32_t)strlen(name))) ||
	    (r = stream_put(s, REC_QUERY, buf_ptr(q), (uint32_t)buf_len(q))) ||
	    (r = stream_flush(s)) || (r = stream_get(s, 4096, &type, &p, &len)))
		goto out;
	if (type != REC_QUERY_REPLY || rec_find_u64(p, len, 2, &running) != 0 || running > 2) {
		r = KM_ERR_PEER;
		goto out;
	}
	if (running == 2) {
		snprintf(err, sizeof(err), "the daemon cannot tell whether %s runs there", name);
		r = KM_ERR_STATE;
		goto out;
	}
	r = running ? 1 : 0;
out:
	if (r < 0)
		fprintf(stderr, "kvm-migrate: asking %s: %s\n", o->dst, err[0] ? err : km_strerror(r));
	buf_free(q);
	stream_free(s);
	chan_close(c);
	chan_tls_free(tls);
	return r;
}

/* MIGRATE_UNKNOWN: find out where the VM runs and settle the source. */
static int settle(const struct options *o, struct qmpc *q, const char *name)
{
	json_t *ret = NULL;
	char err[256];
	int there, i;

	fprintf(stderr, "kvm-migrate: the link broke after the switchover began; asking %s "
		"whether %s runs there\n", o->dst, name);
	for (i = 0; i < 5; i++) {
		if ((there = ask_destination(o, name)) >= 0)
			break;
		sleep(1);	/* retry pacing for a peer that may be coming back */
	}
	if (there < 0) {
		fprintf(stderr, "kvm-migrate: cannot reach %s: %s stays paused at the source; run "
			"kvm-migrate again when the destination answers (it settles first), or, if "
			"you know the VM does not run there, send migrate-settle "
			"{\"running-there\": false} to its control socket (docs/control.md)\n",
			o->dst, name);
		return EXIT_UNSETTLED;
	}
	if (qmpc_call(q, "migrate-settle", json_pack("{s:b}", "running-there", there), 10000,
		      &ret, err, sizeof(err)) != 0) {
		fprintf(stderr, "kvm-migrate: settling the source: %s\n", err);
		return EXIT_UNSETTLED;
	}
	json_decref(ret);
	fprintf(stderr, "kvm-migrate: %s %s\n", name, there ? "runs at the destination: migrated" :
		"does not run at the destination: resumed at the source");
	return there ? 0 : EXIT_FAILED;
}

static int source_socket(const struct options *o, char *path, size_t len)
{
	char rundir[4096];
	int r;

	if (strchr(o->src, '/')) {
		snprintf(path, len, "%s", o->src);
		return 0;
	}
	if ((r = rundir_resolve(o->rundir, rundir, sizeof(rundir))) != 0)
		return r;
	return rundir_socket_path(rundir, o->src, path, len);
}

/*
 * DST file:DIR: a live snapshot (checkpoint-save), a base pre-copied into
 * DIR while the VM runs on; the VM pauses only for the last pages.
 */
static int save_to_file(const struct options *o, struct qmpc *q)
{
	const char *dir = o->dst + 5;
	json_t *args = json_pack("{s:s, s:b}", "dir", dir, "compress",
				 json_is_false(json_object_get(o->args, "compress")) ? 0 : 1);
	json_t *ret = NULL;
	char err[512] = "";
	int r;

	if (!*dir) {
		fprintf(stderr, "kvm-migrate: file: needs a directory (file:DIR)\n");
		json_decref(args);
		return EXIT_USAGE;
	}
	/* A large VM takes a while to write: the bound is the migration's. */
	r = qmpc_call(q, "checkpoint-save", args, 3600000, &ret, err, sizeof(err));
	if (r != 0) {
		fprintf(stderr, "kvm-migrate: saving %s to %s failed: %s\n", o->src, dir,
			r == KM_ERR_REFUSED ? err : km_strerror(r));
		json_decref(ret);
		return EXIT_FAILED;
	}
	printf("saved %s to %s: checkpoint %lld, %lld pages, %lld bytes, paused %.2f ms, "
	       "%.0f ms in all; it runs on\n", o->src, dir,
	       (long long)json_integer_value(json_object_get(ret, "id")),
	       (long long)json_integer_value(json_object_get(ret, "pages")),
	       (long long)json_integer_value(json_object_get(ret, "bytes")),
	       json_real_value(json_object_get(ret, "pause-ms")),
	       json_real_value(json_object_get(ret, "total-ms")));
	json_decref(ret);
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct qmpc *q = NULL;
	json_t *ret = NULL, *st = NULL, *status_ret = NULL;
	char path[4096], err[256] = "", name[64] = "";
	struct trace_out tr = { 0 };
	struct progress_out po = { 0 };
	int r, status = EXIT_SOURCE, tty = isatty(2);
	const char *s;

	if (argc >= 2 && !strcmp(argv[1], "dirty-rate"))
		return dirtyrate_cli(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "trace"))
		return trace_cli(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "simulate"))
		return simulate_cli(argc - 1, argv + 1);
	if (parse_options(argc, argv, &o) < 0) {
		json_decref(o.args);
		return EXIT_USAGE;
	}
	log_init("kvm-migrate", LOG_INFO);
	signal(SIGPIPE, SIG_IGN);
	if (o.ask) {
		/* The settlement's question, for an operator (docs/protocol.md s.2). */
		r = ask_destination(&o, o.src);
		printf("%s: %s at %s\n", o.src, r > 0 ? "runs" : r == 0 ?
		       "does not run (and will not start)" : "cannot tell whether it runs", o.dst);
		json_decref(o.args);
		return r > 0 ? 0 : r == 0 ? EXIT_FAILED : EXIT_UNSETTLED;
	}
	signal(SIGINT, on_sigint);
	signal(SIGTERM, on_sigint);
	if ((r = source_socket(&o, path, sizeof(path))) != 0 || (r = qmpc_open(path, &q)) != 0) {
		fprintf(stderr, "kvm-migrate: VM %s: cannot reach its control socket %s: %s\n",
			o.src, path, km_strerror(r));
		goto out;
	}
	if (qmpc_call(q, "query-status", NULL, 10000, &status_ret, err, sizeof(err)) == 0)
		snprintf(name, sizeof(name), "%s", str(status_ret, "name"));
	/*
	 * A migration whose outcome was never settled (the link broke after
	 * the switchover began and the destination could not be asked): this
	 * run settles it instead of starting another.
	 */
	if (qmpc_call(q, "query-migrate", NULL, 10000, &st, err, sizeof(err)) == 0 &&
	    !strcmp(str(st, "status"), "unknown")) {
		/* Only where it went can say whether it runs there. */
		if (strcmp(str(st, "uri"), o.dst)) {
			fprintf(stderr, "kvm-migrate: %s has an unsettled migration to %s: run "
				"kvm-migrate %s %s to settle it\n", o.src, str(st, "uri"), o.src,
				str(st, "uri"));
			status = EXIT_UNSETTLED;
			goto out;
		}
		fprintf(stderr, "kvm-migrate: %s has an unsettled migration to %s: settling it "
			"first\n", o.src, o.dst);
		status = settle(&o, q, name[0] ? name : o.src);
		goto out;
	}
	json_decref(st);
	st = NULL;
	if (!strncmp(o.dst, "file:", 5)) {
		status = save_to_file(&o, q);
		goto out;
	}
	if (o.trace && !(tr.f = fopen(o.trace, "w"))) {
		fprintf(stderr, "kvm-migrate: %s: %s\n", o.trace, strerror(errno));
		status = EXIT_USAGE;
		goto out;
	}
	if (tr.f)
		fprintf(tr.f, "round,start_ms,duration_ms,dirty_pages,pages_sent,bytes,mbps,"
			"throttle_pct,remaining_bytes,expected_downtime_ms,zero_pages,lz4_pages,"
			"raw_pages\n");
	if (o.progress && !(po.f = fopen(o.progress, "w"))) {
		fprintf(stderr, "kvm-migrate: %s: %s\n", o.progress, strerror(errno));
		status = EXIT_USAGE;
		goto out;
	}
	if (po.f)
		fprintf(po.f, "ms,vcpu,counter,host\n");
	r = qmpc_call(q, "migrate", json_incref(o.args), 10000, &ret, err, sizeof(err));
	json_decref(ret);
	if (r != 0) {
		fprintf(stderr, "kvm-migrate: %s refused to migrate: %s\n", o.src,
			r == KM_ERR_REFUSED ? err : km_strerror(r));
		status = EXIT_FAILED;
		goto out;
	}
	status = EXIT_FAILED;
	for (;;) {
		struct timespec ts = { 0, POLL_MS * 1000000L };

		json_decref(st);
		st = NULL;
		if (interrupted) {
			interrupted = 0;
			fprintf(stderr, "\nkvm-migrate: interrupted: cancelling\n");
			if (qmpc_call(q, "migrate-cancel", NULL, 10000, &ret, err, sizeof(err)) == 0)
				json_decref(ret);
		}
		if (po.f)
			progress_take(q, &po);
		if ((r = query(q, &tr, &po, &st, err, sizeof(err))) != 0) {
			fprintf(stderr, "kvm-migrate: lost the source's control socket: %s\n",
				km_strerror(r));
			goto out;
		}
		s = str(st, "status");
		if (strcmp(s, "setup") && strcmp(s, "active") && strcmp(s, "device"))
			break;
		if (tty && !o.quiet && !o.json)
			progress_line(st);
		nanosleep(&ts, NULL);	/* the progress display's refresh period */
	}
	if (tty && !o.quiet && !o.json)
		fprintf(stderr, "\n");
	if (!strcmp(s, "unknown")) {
		status = settle(&o, q, name[0] ? name : o.src);
		json_decref(st);
		st = NULL;
		if (query(q, &tr, &po, &st, err, sizeof(err)) != 0)
			goto out;
	} else {
		status = !strcmp(s, "completed") ? 0 : EXIT_FAILED;
	}
	if (tr.f && tr.next < tr.total)
		fprintf(stderr, "kvm-migrate: --trace: %u of %u rows written (the source went away)\n",
			tr.next, tr.total);
	if (o.json) {
		char *txt = json_dumps(st, JSON_COMPACT);

		printf("%s\n", txt ? txt : "{}");
		free(txt);
	} else {
		report(st, stdout);
	}
	if (status == EXIT_FAILED)
		fprintf(stderr, "kvm-migrate: %s: %s; the VM runs on at the source\n",
			str(st, "status"), str(st, "error"));
out:
	if (tr.f)
		fclose(tr.f);
	if (po.f)
		fclose(po.f);
	json_decref(st);
	json_decref(status_ret);
	json_decref(o.args);
	qmpc_close(q);
	return status;
}
