/*
 * kvm-migrate simulate FILE: replays a pre-copy migration over a dirty
 * trace (migrate/sim.h for the model) with the engine's own convergence
 * policy (migrate/policy.c), and prints the prediction: total time,
 * downtime, rounds, bytes, pages per round.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dtrace.h"
#include "err.h"
#include "parse.h"
#include "kvm/vmrec.h"
#include "migrate/cli.h"
#include "migrate/migrate.h"
#include "migrate/sim.h"

#define PROG	"kvm-migrate simulate"

static void sim_usage(FILE *f)
{
	fprintf(f,
"Usage: kvm-migrate simulate FILE --bandwidth RATE [OPTION]...\n"
"Predict a live migration of the run a dirty trace recorded (kvm-run\n"
"--record-dirty FILE): pre-copy replayed over the trace, each decision taken by\n"
"the migration engine's own convergence policy.\n"
"\n"
"  -b, --bandwidth RATE   bytes/s on the link, K/M/G suffixes (required)\n"
"  -d, --downtime-ms N    stop-and-copy once the expected downtime fits (default %d)\n"
"      --auto-converge    throttle the guest when it dirties faster than the link\n"
"      --compress RATIO   pages shrink by RATIO on the wire (>= 1; default 1: raw)\n"
"      --max-rounds N     pre-copy rounds before giving up (default %d; 0: none)\n"
"      --timeout-ms N     pre-copy time before giving up (default %d; 0: none)\n"
"      --force            at a limit, stop and copy anyway instead of giving up\n"
"      --start-ms N       the migration begins N ms into the trace (default 0)\n"
"      --setup-ms MS      from its start to the bulk round (connecting, the\n"
"                         config, the destination's acceptance; default 0)\n"
"      --bulk-ms MS       fixed cost of the bulk round (switching dirty logging\n"
"                         on, finding the written memory: the guest's size;\n"
"                         default: as --round-ms)\n"
"      --round-ms MS      fixed cost of each later round (reading the dirty\n"
"                         log, the destination's acknowledgement; default 0)\n"
"      --switchover-ms MS fixed part of the downtime (the state, loading it,\n"
"                         the go/running handshake; default 0)\n"
"      --bulk touched|all the first round sends the pages the trace dirtied\n"
"                         before the start (with --start-ms 0: all it dirties;\n"
"                         default, as the engine skips never-written memory)\n"
"                         or all guest memory\n"
"      --json             print the prediction as one JSON object\n"
"  -h, --help             this help\n"
"\n"
"The trace repeats if the migration outlasts it. A page costs page-size / RATIO\n"
"+ %d bytes on the wire. The four fixed costs (MS may have decimals) are the\n"
"machine's and the link's: measure them once from real migrations of a guest\n"
"of the trace's size (scripts/bench-sim does, docs/research.md); without them\n"
"they are free.\n"
"Exit status: 0 simulated (whether or not it converges: see the outcome);\n"
"1 the trace is damaged, cut short or of a later version; 2 usage;\n"
"3 FILE cannot be opened.\n",
		MIGRATE_DEFAULT_DOWNTIME_MS, MIGRATE_DEFAULT_MAX_ROUNDS, MIGRATE_DEFAULT_TIMEOUT_MS,
		SIM_PAGE_OVERHEAD);
}

static const char *sim_outcome(const struct sim_result *r)
{
	return r->converged ? "converged" : r->forced ? "forced" : "gave-up";
}

static int sim_print_json(const char *file, const struct sim_params *p,
			  const struct sim_result *r)
{
	json_t *o, *rows = json_array();
	unsigned int i;
	int ret = -1;

	if (!rows)
		return -1;
	for (i = 0; i < r->nr_round; i++) {
		const struct sim_round *w = &r->round[i];

		if (json_array_append_new(rows, json_pack("{si sf sf sI sI si so sf}",
				"round", (int)i, "start-ms", w->start_ns / 1e6, "ms",
				w->duration_ns / 1e6, "pages", (json_int_t)w->pages,
				"bytes", (json_int_t)w->bytes, "throttle-percentage",
				(int)w->throttle_pct, "expected-downtime",
				w->expected_ns == UINT64_MAX ? json_null() :
							       json_real(w->expected_ns / 1e6),
				"trace-ms", w->trace_ns / 1e6)) != 0)
			goto out;
	}
	o = json_pack("{ss sI sI sb sf sI sI sb ss sf sf sf sf sf ss si sf sf sf sI sI sI si so so sO}",
		      "trace", file, "bandwidth", (json_int_t)p->bandwidth,
		      "downtime-limit", (json_int_t)(p->policy.downtime_ns / 1000000),
		      "auto-converge", p->policy.auto_converge, "compression-ratio", p->compress,
		      "max-rounds", (json_int_t)p->policy.max_rounds,
		      "timeout", (json_int_t)(p->policy.timeout_ns / 1000000),
		      "force", p->policy.force, "bulk", p->bulk_all ? "all" : "touched",
		      "start-ms", p->start_ns / 1e6, "setup-ms", p->setup_ns / 1e6,
		      "bulk-ms", p->bulk_ns / 1e6, "round-ms", p->round_ns / 1e6, "switchover-ms", p->switchover_ns / 1e6,
		      "outcome", sim_outcome(r), "rounds", (int)r->rounds,
		      "total-time", r->total_ns / 1e6, "precopy-time", r->precopy_ns / 1e6,
		      "downtime", r->downtime_ns / 1e6, "pages", (json_int_t)r->pages,
		      "transferred", (json_int_t)r->bytes, "final-pages", (json_int_t)r->final_pages,
		      "throttle-percentage", (int)r->throttle_pct,
		      "progress", r->has_progress ? json_integer((json_int_t)r->progress) :
						    json_null(),
		      "progress-unthrottled", r->has_progress ?
				json_integer((json_int_t)r->progress_unthrottled) : json_null(),
		      "round", rows);
	if (!o)
		goto out;
	json_dumpf(o, stdout, JSON_INDENT(1));
	printf("\n");
	json_decref(o);
	ret = 0;
out:
	json_decref(rows);
	return ret;
}

static void sim_print_text(const struct sim_result *r)
{
	unsigned int i;

	if (r->gave_up)
		printf("outcome: gave up after %u round%s (%.1f ms): the source would run on\n",
		       r->rounds, r->rounds == 1 ? "" : "s", r->precopy_ns / 1e6);
	else
		printf("outcome: %s after %u round%s%s; total %.1f ms, downtime %.2f ms\n",
		       r->converged ? "converged" : "forced at a limit", r->rounds,
		       r->rounds == 1 ? "" : "s",
		       r->throttle_pct ? " (throttled)" : "", r->total_ns / 1e6,
		       r->downtime_ns / 1e6);
	if (r->setup_ns)
		printf("setup %.1f ms before round 0 (given)\n", r->setup_ns / 1e6);
	printf("sent %llu pages, %llu bytes (%.1f MiB); throttle at the end %u %%\n",
	       (unsigned long long)r->pages, (unsigned long long)r->bytes,
	       (double)r->bytes / (1 << 20), r->throttle_pct);
	if (r->has_progress && r->progress_unthrottled)
		printf("guest progress during pre-copy: %llu (%.1f %% of %llu unthrottled)\n",
		       (unsigned long long)r->progress,
		       100.0 * (double)r->progress / (double)r->progress_unthrottled,
		       (unsigned long long)r->progress_unthrottled);
	printf("%6s %11s %10s %10s %12s %9s %12s\n", "round", "start-ms", "ms", "pages", "bytes",
	       "throttle", "expected-ms");
	for (i = 0; i < r->nr_round; i++) {
		const struct sim_round *w = &r->round[i];
		char exp[32] = "-";

		if (w->expected_ns != UINT64_MAX)
			snprintf(exp, sizeof(exp), "%.2f", w->expected_ns / 1e6);
		printf("%6u %11.2f %10.2f %10llu %12llu %8u%% %12s\n", i, w->start_ns / 1e6,
		       w->duration_ns / 1e6, (unsigned long long)w->pages,
		       (unsigned long long)w->bytes, w->throttle_pct, exp);
	}
	if (!r->gave_up)
		printf("%6s %11.2f %10.2f %10llu\n", "stop", r->precopy_ns / 1e6,
		       r->downtime_ns / 1e6, (unsigned long long)r->final_pages);
}

/* A fixed cost in milliseconds, decimals allowed, 0 to a minute: 0 and *ns, or -1 (said). */
static int sim_cost_ms(const char *name, const char *arg, uint64_t *ns)
{
	char *end;
	double v = strtod(arg, &end);

	if (*end || end == arg || !(v >= 0.0 && v <= 60000.0)) {
		fprintf(stderr, PROG ": --%s '%s': milliseconds, 0 to 60000\n", name, arg);
		return -1;
	}
	*ns = (uint64_t)llround(v * 1e6);
	return 0;
}

int simulate_cli(int argc, char **argv)
{
	enum { OPT_AUTO = 256, OPT_COMPRESS, OPT_ROUNDS, OPT_TIMEOUT, OPT_FORCE, OPT_BULK,
	       OPT_JSON, OPT_START, OPT_SETUP, OPT_BULK_MS, OPT_ROUND, OPT_SWITCH };
	static const struct option longopts[] = {
		{ "bandwidth", required_argument, NULL, 'b' },
		{ "downtime-ms", required_argument, NULL, 'd' },
		{ "auto-converge", no_argument, NULL, OPT_AUTO },
		{ "compress", required_argument, NULL, OPT_COMPRESS },
		{ "max-rounds", required_argument, NULL, OPT_ROUNDS },
		{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "bulk", required_argument, NULL, OPT_BULK },
		{ "start-ms", required_argument, NULL, OPT_START },
		{ "setup-ms", required_argument, NULL, OPT_SETUP },
		{ "bulk-ms", required_argument, NULL, OPT_BULK_MS },
		{ "round-ms", required_argument, NULL, OPT_ROUND },
		{ "switchover-ms", required_argument, NULL, OPT_SWITCH },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sim_params p = {
		.compress = 1.0, .page_overhead = SIM_PAGE_OVERHEAD, .batch_bytes = VMREC_BATCH,
		.policy = { .downtime_ns = MIGRATE_DEFAULT_DOWNTIME_MS * 1000000ULL,
			    .max_rounds = MIGRATE_DEFAULT_MAX_ROUNDS,
			    .timeout_ns = MIGRATE_DEFAULT_TIMEOUT_MS * 1000000ULL },
	};
	struct sim_result res;
	struct dtrace *t = NULL;
	int c, json = 0, bulk_ms = 0, status, r;
	uint64_t v;
	char *end;

	optind = 1;
	while ((c = getopt_long(argc, argv, "b:d:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			/* As kvm-migrate --bandwidth parses it. */
			if (parse_size(optarg, &v) != 0 || v < 4096 || v > (1ULL << 40)) {
				fprintf(stderr, PROG ": --bandwidth '%s': need bytes/s, at least 4K "
					"(K/M/G suffixes)\n", optarg);
				return 2;
			}
			p.bandwidth = v;
			break;
		case 'd':
			if (parse_u64(optarg, 1, 3600000, &v) != 0) {
				fprintf(stderr, PROG ": --downtime-ms '%s': 1 to 3600000\n", optarg);
				return 2;
			}
			p.policy.downtime_ns = v * 1000000ULL;
			break;
		case OPT_AUTO:
			p.policy.auto_converge = true;
			break;
		case OPT_COMPRESS:
			p.compress = strtod(optarg, &end);
			if (*end || end == optarg || !(p.compress >= 1.0 && p.compress <= 4096.0)) {
				fprintf(stderr, PROG ": --compress '%s': a ratio from 1 to 4096\n",
					optarg);
				return 2;
			}
			break;
		case OPT_ROUNDS:
			if (parse_u64(optarg, 0, SIM_MAX_ROUNDS, &v) != 0) {
				fprintf(stderr, PROG ": --max-rounds '%s': 0 to %d\n", optarg,
					SIM_MAX_ROUNDS);
				return 2;
			}
			p.policy.max_rounds = (unsigned int)v;
			break;
		case OPT_TIMEOUT:
			if (parse_u64(optarg, 0, 86400000, &v) != 0) {
				fprintf(stderr, PROG ": --timeout-ms '%s': 0 to 86400000\n", optarg);
				return 2;
			}
			p.policy.timeout_ns = v * 1000000ULL;
			break;
		case OPT_FORCE:
			p.policy.force = true;
			break;
		case OPT_BULK:
			if (strcmp(optarg, "touched") && strcmp(optarg, "all")) {
				fprintf(stderr, PROG ": --bulk '%s': touched or all\n", optarg);
				return 2;
			}
			p.bulk_all = !strcmp(optarg, "all");
			break;
		case OPT_START:
			/* Bounded by the trace's length once it is read (sim__run). */
			if (parse_u64(optarg, 0, DTRACE_MAX_DURATION_NS / 1000000ULL, &v) != 0) {
				fprintf(stderr, PROG ": --start-ms '%s': milliseconds into the "
					"trace\n", optarg);
				return 2;
			}
			p.start_ns = v * 1000000ULL;
			break;
		case OPT_SETUP:
			if (sim_cost_ms("setup-ms", optarg, &p.setup_ns) != 0)
				return 2;
			break;
		case OPT_BULK_MS:
			if (sim_cost_ms("bulk-ms", optarg, &p.bulk_ns) != 0)
				return 2;
			bulk_ms = 1;
			break;
		case OPT_ROUND:
			if (sim_cost_ms("round-ms", optarg, &p.round_ns) != 0)
				return 2;
			break;
		case OPT_SWITCH:
			if (sim_cost_ms("switchover-ms", optarg, &p.switchover_ns) != 0)
				return 2;
			break;
		case OPT_JSON:
			json = 1;
			break;
		case 'h':
			sim_usage(stdout);
			return 0;
		default:
			sim_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1) {
		sim_usage(stderr);
		return 2;
	}
	if (!p.bandwidth) {
		fprintf(stderr, PROG ": --bandwidth is required (the link's bytes/s)\n");
		return 2;
	}
	/* Without its own figure the bulk round costs what any round does. */
	if (!bulk_ms)
		p.bulk_ns = p.round_ns;
	if ((status = trace_open_cli(PROG, argv[optind], &t)) != 0)
		return status;
	if ((r = sim__run(t, &p, &res)) != 0) {
		fprintf(stderr, PROG ": %s: %s\n", argv[optind], r == KM_ERR_INVALID ?
			"nothing to replay (--start-ms at or past the trace's end, or a trace "
			"without time)" : km_strerror(r));
		dtrace__free(t);
		return 1;
	}
	status = 0;
	if (json) {
		if (sim_print_json(argv[optind], &p, &res) != 0) {
			fprintf(stderr, PROG ": out of memory\n");
			status = 1;
		}
	} else {
		sim_print_text(&res);
	}
	sim__free(&res);
	dtrace__free(t);
	return status;
}
