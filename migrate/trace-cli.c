/*
 * kvm-migrate trace FILE: reads a dirty trace (kvm-run --record-dirty;
 * lib/dtrace.h) and prints what it holds: a summary (duration, intervals,
 * pages, what recording cost) and one row per interval (its length, the
 * pages it dirtied, those never dirtied before in the trace, the guest's
 * progress), as text, JSON or CSV.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "bitmap.h"
#include "dtrace.h"
#include "err.h"
#include "migrate/cli.h"

static void trace_usage(FILE *f)
{
	fprintf(f,
"Usage: kvm-migrate trace FILE [--json | --csv]\n"
"Show a dirty trace recorded with kvm-run --record-dirty FILE: its summary and\n"
"one row per interval (index, ms, dirty pages, pages new to the trace, the\n"
"guest's progress counter summed over its vCPUs).\n"
"\n"
"      --json             the summary and the rows as one JSON object\n"
"      --csv              the rows as CSV, with a header line\n"
"  -h, --help             this help\n"
"\n"
"Exit status: 0 read; 1 the trace is damaged, cut short or of a later version;\n"
"2 usage; 3 FILE cannot be opened.\n");
}

int trace_open_cli(const char *prog, const char *path, struct dtrace **out)
{
	char err[512];
	int r = dtrace__load(path, out, err, sizeof(err));

	if (r == 0)
		return 0;
	/* A system error is in err already; the trace's own say what kind of damage. */
	if (r > -4096 && r < 0)
		fprintf(stderr, "%s: %s\n", prog, err[0] ? err : path);
	else
		fprintf(stderr, "%s: %s (%s)\n", prog, err[0] ? err : path, km_strerror(r));
	/* Not there or not readable, against there but not a good trace. */
	return r > -4096 && r < 0 ? 3 : r == KM_ERR_INVALID ? 3 : 1;
}

int trace_cli(int argc, char **argv)
{
	enum { OPT_JSON = 256, OPT_CSV };
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "csv", no_argument, NULL, OPT_CSV },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct dtrace *t = NULL;
	struct bitmap seen = { 0 };
	json_t *o = NULL, *rows = NULL;
	uint64_t i, k, fresh, distinct = 0, dur_ns = 0;
	int c, json = 0, csv = 0, status;
	double secs;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON:
			json = 1;
			break;
		case OPT_CSV:
			csv = 1;
			break;
		case 'h':
			trace_usage(stdout);
			return 0;
		default:
			trace_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1 || (json && csv)) {
		trace_usage(stderr);
		return 2;
	}
	if ((status = trace_open_cli("kvm-migrate trace", argv[optind], &t)) != 0)
		return status;
	status = 1;
	if (bitmap_init(&seen, t->info.guest_pages) != 0 || !(rows = json_array()))
		goto out;
	for (i = 0; i < t->nr_iv; i++)
		dur_ns += t->iv[i].duration_ns;
	secs = (double)dur_ns / 1e9;
	if (csv)
		printf("index,ms,dirty_pages,new_pages,progress\n");
	for (i = 0; i < t->nr_iv; i++) {
		const struct dtrace_interval *iv = &t->iv[i];

		/* New: dirtied here for the first time in the trace. */
		for (k = 0, fresh = 0; k < iv->nr_runs; k++) {
			const struct dtrace_run *r = &t->runs[iv->first_run + k];
			uint64_t p;

			for (p = r->start; p < r->start + r->len; p++)
				if (!bitmap_test(&seen, p)) {
					bitmap_set(&seen, p);
					fresh++;
				}
		}
		distinct += fresh;
		if (csv) {
			printf("%llu,%.3f,%llu,%llu,", (unsigned long long)iv->index,
			       iv->duration_ns / 1e6, (unsigned long long)iv->pages,
			       (unsigned long long)fresh);
			if (iv->has_progress)
				printf("%llu", (unsigned long long)iv->progress);
			printf("\n");
		} else if (json_array_append_new(rows, json_pack("{sI sf sI sI so}",
				"index", (json_int_t)iv->index, "ms", iv->duration_ns / 1e6,
				"dirty-pages", (json_int_t)iv->pages, "new-pages", (json_int_t)fresh,
				"progress", iv->has_progress ? json_integer((json_int_t)iv->progress) :
							       json_null())) != 0) {
			goto out;
		}
	}
	if (csv) {
		status = 0;
		goto out;
	}
	if (json) {
		o = json_pack("{ss sI sI sI sI sI sI sf sI sI sI sf s{sf sf sf sI sf} sO}",
			      "file", argv[optind], "version", (json_int_t)t->info.version,
			      "page-size", (json_int_t)t->info.page_size,
			      "guest-pages", (json_int_t)t->info.guest_pages,
			      "interval-ms", (json_int_t)t->info.interval_ms,
			      "vcpus", (json_int_t)t->info.vcpus,
			      "start-wall-ns", (json_int_t)t->info.start_wall_ns,
			      "duration-ms", dur_ns / 1e6,
			      "nr-intervals", (json_int_t)t->nr_iv,
			      "dirty-pages", (json_int_t)t->total_pages,
			      "distinct-pages", (json_int_t)distinct,
			      "pages-per-second", secs > 0 ? (double)t->total_pages / secs : 0.0,
			      "cost", "cpu-ms", t->cost.cpu_ns / 1e6,
			      "harvest-ms", t->cost.harvest_ns / 1e6,
			      "write-ms", t->cost.write_ns / 1e6,
			      "bytes", (json_int_t)t->cost.bytes,
			      "cpu-share", dur_ns ? (double)t->cost.cpu_ns / (double)dur_ns : 0.0,
			      "intervals", rows);
		if (!o)
			goto out;
		json_dumpf(o, stdout, JSON_INDENT(1));
		printf("\n");
		status = 0;
		goto out;
	}
	{
		time_t st = (time_t)(t->info.start_wall_ns / 1000000000ULL);
		struct tm tm;
		char when[64] = "?";

		if (gmtime_r(&st, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%s: dirty trace version %u, started %s\n", argv[optind], t->info.version,
		       when);
		printf("guest: %llu pages of %llu bytes (%.1f MiB), %llu vCPU%s\n",
		       (unsigned long long)t->info.guest_pages, (unsigned long long)t->info.page_size,
		       (double)(t->info.guest_pages * t->info.page_size) / (1 << 20),
		       (unsigned long long)t->info.vcpus, t->info.vcpus > 1 ? "s" : "");
		printf("%.3f s in %llu intervals of %llu ms: %llu dirty pages (%.0f pages/s, "
		       "%.2f MB/s), %llu distinct\n", secs, (unsigned long long)t->nr_iv,
		       (unsigned long long)t->info.interval_ms, (unsigned long long)t->total_pages,
		       secs > 0 ? (double)t->total_pages / secs : 0.0,
		       secs > 0 ? (double)t->total_pages * (double)t->info.page_size / secs / 1e6 :
				  0.0, (unsigned long long)distinct);
		printf("recording cost: %.1f ms CPU (%.2f %% of the run); wall time %.1f ms reading "
		       "dirty pages, %.1f ms writing; %llu bytes\n", t->cost.cpu_ns / 1e6,
		       dur_ns ? 100.0 * (double)t->cost.cpu_ns / (double)dur_ns : 0.0,
		       t->cost.harvest_ns / 1e6, t->cost.write_ns / 1e6,
		       (unsigned long long)t->cost.bytes);
		printf("%8s %10s %10s %10s %14s\n", "index", "ms", "dirty", "new", "progress");
		for (i = 0; i < json_array_size(rows); i++) {
			json_t *r = json_array_get(rows, i), *pg = json_object_get(r, "progress");
			char prog[32] = "-";

			if (json_is_integer(pg))
				snprintf(prog, sizeof(prog), "%lld",
					 (long long)json_integer_value(pg));
			printf("%8lld %10.3f %10lld %10lld %14s\n",
			       (long long)json_integer_value(json_object_get(r, "index")),
			       json_real_value(json_object_get(r, "ms")),
			       (long long)json_integer_value(json_object_get(r, "dirty-pages")),
			       (long long)json_integer_value(json_object_get(r, "new-pages")), prog);
		}
	}
	status = 0;
out:
	if (status == 1 && !o && !csv)
		fprintf(stderr, "kvm-migrate trace: out of memory\n");
	json_decref(o);
	json_decref(rows);
	bitmap_free(&seen);
	dtrace__free(t);
	return status;
}
