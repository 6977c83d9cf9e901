/*
 * kvm-migrate dirty-rate VM: measures a running VM's dirty rate through
 * its control socket (calc-dirty-rate, then query-dirty-rate until it is
 * measured; kvm/dirtyrate.h) and prints one row per interval and the
 * mean, or the whole result as JSON.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "err.h"
#include "parse.h"
#include "rundir.h"
#include "migrate/cli.h"
#include "migrate/qmpc.h"

static void dr_usage(FILE *f)
{
	fprintf(f,
"Usage: kvm-migrate dirty-rate VM [OPTION]...\n"
"Measure how fast the running VM (a name in the run directory, or a control\n"
"socket path) writes its memory, without migrating it.\n"
"\n"
"      --seconds N        measure for N seconds (0.1 to 3600; default 10)\n"
"      --interval MS      one row every MS milliseconds (10 to the duration;\n"
"                         default 1000)\n"
"      --mode MODE        bitmap: exact, the VM's dirty logging (default);\n"
"                         ring: as bitmap, and each vCPU's own count (a VM\n"
"                         run with --dirty-log ring);\n"
"                         sample: an estimate from hashing a random sample of\n"
"                         pages twice per interval, no write protection\n"
"      --sample-pages N   pages in the sample (64 to 1048576; default 4096)\n"
"      --rundir DIR       run directory of the VM (as kvm-run's)\n"
"      --wws              also the writable working set against the window\n"
"                         (windows of 1, 2, 4, ... intervals; bitmap mode)\n"
"      --json             print the result as one JSON object\n"
"  -h, --help             this help\n"
"\n"
"Rates are pages/s and MB/s (10^6 bytes of 4 KiB pages).\n"
"Exit status: 0 measured; 1 the measurement failed; 2 usage; 3 the VM cannot be reached.\n");
}

static double dr_num(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_number(v) ? json_number_value(v) : 0.0;
}

int dirtyrate_cli(int argc, char **argv)
{
	enum { OPT_SECONDS = 256, OPT_INTERVAL, OPT_MODE, OPT_SAMPLE, OPT_RUNDIR, OPT_JSON,
	       OPT_WWS };
	static const struct option longopts[] = {
		{ "seconds", required_argument, NULL, OPT_SECONDS },
		{ "interval", required_argument, NULL, OPT_INTERVAL },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "sample-pages", required_argument, NULL, OPT_SAMPLE },
		{ "rundir", required_argument, NULL, OPT_RUNDIR },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "wws", no_argument, NULL, OPT_WWS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *mode = "bitmap", *rundir_opt = NULL, *vm;
	uint64_t duration_ms = 10000, interval_ms = 1000, sample = 4096, v;
	char rundir[4096], path[4096], err[256] = "", *end;
	json_t *ret = NULL, *series;
	struct qmpc *q = NULL;
	unsigned int shown = 0;
	int c, r, json = 0, wws = 0, status = 3;
	double secs;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_SECONDS:
			secs = strtod(optarg, &end);
			if (*end || secs < 0.1 || secs > 3600) {
				fprintf(stderr, "kvm-migrate dirty-rate: --seconds '%s': 0.1 to 3600\n",
					optarg);
				return 2;
			}
			duration_ms = (uint64_t)(secs * 1000 + 0.5);
			break;
		case OPT_INTERVAL:
			if (parse_u64(optarg, 10, 3600000, &v) != 0) {
				fprintf(stderr, "kvm-migrate dirty-rate: --interval '%s': 10 to 3600000 "
					"milliseconds\n", optarg);
				return 2;
			}
			interval_ms = v;
			break;
		case OPT_MODE:
			if (strcmp(optarg, "bitmap") && strcmp(optarg, "sample") &&
			    strcmp(optarg, "ring")) {
				fprintf(stderr, "kvm-migrate dirty-rate: --mode '%s': bitmap, ring or "
					"sample\n", optarg);
				return 2;
			}
			mode = optarg;
			break;
		case OPT_SAMPLE:
			if (parse_u64(optarg, 64, 1048576, &v) != 0) {
				fprintf(stderr, "kvm-migrate dirty-rate: --sample-pages '%s': 64 to "
					"1048576\n", optarg);
				return 2;
			}
			sample = v;
			break;
		case OPT_RUNDIR:
			rundir_opt = optarg;
			break;
		case OPT_JSON:
			json = 1;
			break;
		case OPT_WWS:
			wws = 1;
			break;
		case 'h':
			dr_usage(stdout);
			return 0;
		default:
			dr_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1) {
		dr_usage(stderr);
		return 2;
	}
	if (interval_ms > duration_ms) {
		fprintf(stderr, "kvm-migrate dirty-rate: --interval longer than --seconds\n");
		return 2;
	}
	vm = argv[optind];
	if (strchr(vm, '/'))
		snprintf(path, sizeof(path), "%s", vm);
	else if ((r = rundir_resolve(rundir_opt, rundir, sizeof(rundir))) != 0 ||
		 (r = rundir_socket_path(rundir, vm, path, sizeof(path))) != 0) {
		fprintf(stderr, "kvm-migrate dirty-rate: VM %s: %s\n", vm, km_strerror(r));
		return 3;
	}
	if ((r = qmpc_open(path, &q)) != 0) {
		fprintf(stderr, "kvm-migrate dirty-rate: VM %s: cannot reach its control socket %s: "
			"%s\n", vm, path, km_strerror(r));
		return 3;
	}
	signal(SIGINT, on_sigint);
	signal(SIGTERM, on_sigint);
	if ((r = qmpc_call(q, "calc-dirty-rate", json_pack("{s:s, s:I, s:I, s:I, s:b}", "mode",
			   mode, "duration-ms", (json_int_t)duration_ms, "interval-ms",
			   (json_int_t)interval_ms, "sample-pages", (json_int_t)sample, "wws", wws),
			   10000,
			   &ret, err, sizeof(err))) != 0) {
		fprintf(stderr, "kvm-migrate dirty-rate: %s: %s\n", vm, err[0] ? err : km_strerror(r));
		status = r == KM_ERR_REFUSED ? 1 : 3;
		goto out;
	}
	json_decref(ret);
	ret = NULL;
	if (!json)
		printf("%10s %12s %14s %10s\n", "end (ms)", "pages", "pages/s", "MB/s");
	for (;;) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 100 * 1000000L };
		const char *st;
		json_t *row;

		if (interrupted) {
			json_decref(ret);
			ret = NULL;
			(void)qmpc_call(q, "cancel-dirty-rate", NULL, 10000, &ret, err, sizeof(err));
			interrupted = 0;
		}
		json_decref(ret);
		ret = NULL;
		if ((r = qmpc_call(q, "query-dirty-rate", NULL, 10000, &ret, err, sizeof(err))) != 0) {
			fprintf(stderr, "kvm-migrate dirty-rate: %s: %s\n", vm,
				err[0] ? err : km_strerror(r));
			goto out;
		}
		series = json_object_get(ret, "series");
		for (; !json && shown < json_array_size(series); shown++) {
			row = json_array_get(series, shown);
			json_t *pv = json_object_get(row, "vcpu-pages"), *x;
			size_t k;

			printf("%10.0f %12.0f %14.0f %10.1f", dr_num(row, "end-ms"),
			       dr_num(row, "pages"), dr_num(row, "pages-per-second"),
			       dr_num(row, "mb-per-second"));
			json_array_foreach(pv, k, x)
				printf("%s%.0f", k ? " " : "   vCPUs: ", json_number_value(x));
			printf("\n");
		}
		fflush(stdout);
		st = json_string_value(json_object_get(ret, "status"));
		if (st && strcmp(st, "measuring"))
			break;
		nanosleep(&ts, NULL);
	}
	if (json) {
		char *s = json_dumps(ret, JSON_COMPACT);

		printf("%s\n", s ? s : "{}");
		free(s);
	} else {
		printf("%s: %s, %s: %.0f pages/s, %.1f MB/s over %.0f intervals (max %.0f pages in one)%s%s\n",
		       vm, json_string_value(json_object_get(ret, "status")), mode,
		       dr_num(ret, "pages-per-second"), dr_num(ret, "mb-per-second"),
		       dr_num(ret, "intervals"), dr_num(ret, "max-interval-pages"),
		       json_object_get(ret, "error") ? ": " : "",
		       json_object_get(ret, "error") ?
		       json_string_value(json_object_get(ret, "error")) : "");
		if (wws) {
			json_t *row;
			size_t i;

			printf("writable working set:\n%12s %12s %10s %8s\n", "window (ms)", "pages",
			       "MB", "windows");
			json_array_foreach(json_object_get(ret, "wws"), i, row)
				printf("%12.0f %12.0f %10.1f %8.0f\n", dr_num(row, "window-ms"),
				       dr_num(row, "pages"), dr_num(row, "mb"), dr_num(row, "windows"));
		}
	}
	status = strcmp(json_string_value(json_object_get(ret, "status")) ?: "", "measured") ? 1 : 0;
out:
	json_decref(ret);
	qmpc_close(q);
	return status;
}
