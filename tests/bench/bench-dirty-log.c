/*
 * bench-dirty-log: what dirty logging costs, per backend, in the spirit of
 * Linux's tools/testing/selftests/kvm/dirty_log_perf_test.c. For each guest
 * size, vCPU count and backend (tests/bench/dirty-run.h): guest write
 * throughput with logging off and on, the time to turn logging on and off,
 * the harvest time per round with 1%, 10% and 100% of the pages dirty, and
 * the cost per dirty page. One table per run, headed by the machine, its
 * own reference limits (tests/bench/baseline.h) and the date.
 *
 * Run it through scripts/bench-dirty-log, which builds, finds a KVM (or the
 * nested-KVM sandbox) and says where the numbers come from.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "parse.h"
#include "tests/lib/kvm_test.h"
#include "tests/bench/baseline.h"
#include "tests/bench/dirty-run.h"

#define MAX_LIST 8

struct options {
	uint64_t mem[MAX_LIST];
	unsigned int nr_mem;
	unsigned int vcpus[MAX_LIST];
	unsigned int nr_vcpus;
	unsigned int large_vcpus[MAX_LIST];	/* for guests above 1 GiB */
	unsigned int nr_large_vcpus;		/* 0: the same as vcpus */
	enum dirty_backend backend[MAX_LIST];
	unsigned int nr_backend;
	unsigned int passes;		/* per measurement */
	unsigned int large_passes;	/* passes over every page, guests above 1 GiB */
	uint32_t ring_bytes;
	uint64_t baseline_mem;
	bool baseline, baseline_only, check_kvm, quick;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench-dirty-log [options]\n"
		"  --mem LIST           guest sizes (default 1G,4G)\n"
		"  --vcpus LIST         vCPU counts (default 1,2)\n"
		"  --large-vcpus LIST   vCPU counts for guests above 1 GiB (default: --vcpus)\n"
		"  --backend LIST       bitmap,clear,ring (default all three)\n"
		"  --passes N           passes per measurement (default 3)\n"
		"  --large-passes N     passes over every page (logging off, 100%% dirty) for\n"
		"                       guests above 1 GiB (default 1): they are the long ones\n"
		"  --ring-bytes N       dirty ring per vCPU (default %u)\n"
		"  --baseline-mem SIZE  memory for the reference write rate (default 1G)\n"
		"  --no-baseline        do not measure this machine's reference limits\n"
		"  --baseline-only      only the machine and its reference limits (no KVM needed)\n"
		"  --check-kvm          exit 0 if /dev/kvm works here, else say why and exit 3\n"
		"  --quick              smoke run: 256M guests, 1 pass\n",
		DIRTY_RING_DEFAULT_BYTES);
}

/* Splits a comma list; each item through parse_item. */
static int parse_list(const char *s, unsigned int *n, int (*parse_item)(const char *, unsigned int, void *),
		      void *arr)
{
	char buf[256], *tok, *save = NULL;
	int r;

	snprintf(buf, sizeof(buf), "%s", s);
	*n = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (*n == MAX_LIST)
			return KM_ERR_TOO_LARGE;
		if ((r = parse_item(tok, *n, arr)) != 0)
			return r;
		(*n)++;
	}
	return *n ? 0 : KM_ERR_INVALID;
}

static int parse_mem_item(const char *s, unsigned int i, void *arr)
{
	return parse_size(s, &((uint64_t *)arr)[i]);
}

static int parse_vcpus_item(const char *s, unsigned int i, void *arr)
{
	uint64_t v;
	int r = parse_u64(s, 1, KM_MAX_VCPUS, &v);

	((unsigned int *)arr)[i] = (unsigned int)v;
	return r;
}

static int parse_backend_item(const char *s, unsigned int i, void *arr)
{
	return dirty__parse_backend(s, &((enum dirty_backend *)arr)[i]);
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { O_MEM = 256, O_VCPUS, O_LVCPUS, O_BACKEND, O_PASSES, O_LARGE, O_RING, O_BMEM,
	       O_NOBASE, O_BONLY, O_CHECK, O_QUICK, O_HELP };
	static const struct option longopts[] = {
		{ "mem", required_argument, NULL, O_MEM },
		{ "vcpus", required_argument, NULL, O_VCPUS },
		{ "large-vcpus", required_argument, NULL, O_LVCPUS },
		{ "backend", required_argument, NULL, O_BACKEND },
		{ "passes", required_argument, NULL, O_PASSES },
		{ "large-passes", required_argument, NULL, O_LARGE },
		{ "ring-bytes", required_argument, NULL, O_RING },
		{ "baseline-mem", required_argument, NULL, O_BMEM },
		{ "no-baseline", no_argument, NULL, O_NOBASE },
		{ "baseline-only", no_argument, NULL, O_BONLY },
		{ "check-kvm", no_argument, NULL, O_CHECK },
		{ "quick", no_argument, NULL, O_QUICK },
		{ "help", no_argument, NULL, O_HELP },
		{ 0 }
	};
	bool mem_given = false, passes_given = false;
	uint64_t v;
	int c, r = 0;

	*o = (struct options){
		.mem = { 1ULL << 30, 4ULL << 30 }, .nr_mem = 2,
		.vcpus = { 1, 2 }, .nr_vcpus = 2,
		.backend = { DIRTY_BITMAP, DIRTY_CLEAR, DIRTY_RING }, .nr_backend = 3,
		.passes = 3, .large_passes = 1, .baseline_mem = 1ULL << 30, .baseline = true,
	};
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_MEM:
			r = parse_list(optarg, &o->nr_mem, parse_mem_item, o->mem);
			mem_given = true;
			break;
		case O_VCPUS:
			r = parse_list(optarg, &o->nr_vcpus, parse_vcpus_item, o->vcpus);
			break;
		case O_LVCPUS:
			r = parse_list(optarg, &o->nr_large_vcpus, parse_vcpus_item, o->large_vcpus);
			break;
		case O_BACKEND:
			r = parse_list(optarg, &o->nr_backend, parse_backend_item, o->backend);
			break;
		case O_PASSES:
		case O_LARGE:
			if ((r = parse_u64(optarg, 1, 15, &v)) == 0)
				*(c == O_PASSES ? &o->passes : &o->large_passes) = (unsigned int)v;
			passes_given = true;
			break;
		case O_RING:
			if ((r = parse_size(optarg, &v)) == 0 && v > UINT32_MAX)
				r = KM_ERR_INVALID;
			o->ring_bytes = (uint32_t)v;
			break;
		case O_BMEM:
			if ((r = parse_size(optarg, &o->baseline_mem)) == 0 &&
			    o->baseline_mem < (16ULL << 20))
				r = KM_ERR_INVALID;
			break;
		case O_NOBASE:
			o->baseline = false;
			break;
		case O_BONLY:
			o->baseline_only = true;
			break;
		case O_CHECK:
			o->check_kvm = true;
			break;
		case O_QUICK:
			o->quick = true;
			break;
		case O_HELP:
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return KM_ERR_INVALID;
		}
		if (r) {
			fprintf(stderr, "bench-dirty-log: bad value '%s': %s\n", optarg, km_strerror(r));
			return r;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "bench-dirty-log: unexpected argument '%s'\n", argv[optind]);
		return KM_ERR_INVALID;
	}
	if (!o->nr_large_vcpus) {
		memcpy(o->large_vcpus, o->vcpus, sizeof(o->vcpus));
		o->nr_large_vcpus = o->nr_vcpus;
	}
	if (o->quick) {
		if (!mem_given) {
			o->mem[0] = 256ULL << 20;
			o->nr_mem = 1;
		}
		if (!passes_given)
			o->passes = o->large_passes = 1;
		if (o->baseline_mem > (256ULL << 20))
			o->baseline_mem = 256ULL << 20;
	}
	return 0;
}

/* The first line of a small text file, or "?" (for /sys parameters). */
static const char *read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	snprintf(buf, len, "?");
	if (f) {
		if (fgets(buf, (int)len, f))
			buf[strcspn(buf, "\n")] = 0;
		fclose(f);
	}
	return buf;
}

static void cpu_model(char *buf, size_t len)
{
	char line[512], *p;
	FILE *f = fopen("/proc/cpuinfo", "r");

	snprintf(buf, len, "?");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "model name", 10) || !(p = strchr(line, ':')))
			continue;
		p += 1 + (p[1] == ' ');
		p[strcspn(p, "\n")] = 0;
		snprintf(buf, len, "%s", p);
		break;
	}
	fclose(f);
}

/* What KVM this machine offers, in one phrase. */
static void kvm_desc(char *buf, size_t len)
{
	char a[32], b[32], c[32];
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC), version;

	if (fd < 0) {
		snprintf(buf, len, "no usable /dev/kvm");
		return;
	}
	version = ioctl(fd, KVM_GET_API_VERSION, 0);
	close(fd);
	if (!access("/sys/module/kvm_amd", F_OK))
		snprintf(buf, len, "KVM API %d, kvm_amd npt=%s", version,
			 read_line("/sys/module/kvm_amd/parameters/npt", a, sizeof(a)));
	else if (!access("/sys/module/kvm_intel", F_OK))
		snprintf(buf, len, "KVM API %d, kvm_intel ept=%s", version,
			 read_line("/sys/module/kvm_intel/parameters/ept", a, sizeof(a)));
	else
		snprintf(buf, len, "KVM API %d", version);
	snprintf(buf + strlen(buf), len - strlen(buf), ", tdp_mmu=%s, eager_page_split=%s",
		 read_line("/sys/module/kvm/parameters/tdp_mmu", b, sizeof(b)),
		 read_line("/sys/module/kvm/parameters/eager_page_split", c, sizeof(c)));
}

/* Defined only when AddressSanitizer is linked in (scripts/check's second build). */
extern void __asan_init(void) __attribute__((weak));

static void print_machine(void)
{
	char model[256], kvm[256], thp[128], date[64], *p, *q;
	struct utsname u;
	time_t now = time(NULL);

	uname(&u);
	cpu_model(model, sizeof(model));
	kvm_desc(kvm, sizeof(kvm));
	/* "always within_size [never] ...": the one in brackets is in force. */
	read_line("/sys/kernel/mm/transparent_hugepage/shmem_enabled", thp, sizeof(thp));
	if ((p = strchr(thp, '[')) && (q = strchr(p, ']'))) {
		*q = 0;
		memmove(thp, p + 1, strlen(p + 1) + 1);
	}
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
	printf("# bench-dirty-log, %s\n", date);
	printf("# machine: %s, %ld CPUs, \"%s\", Linux %s; %s; shmem THP %s\n", u.nodename,
	       sysconf(_SC_NPROCESSORS_ONLN), model, u.release, kvm, thp);
	if (__asan_init)
		printf("# WARNING: built with AddressSanitizer (configure --enable-sanitizers): "
		       "these numbers measure the sanitizer\n");
}

/* A number in 4 to 7 characters with about 3 significant digits. */
static const char *num(char *buf, double v)
{
	if (v >= 1e5)
		snprintf(buf, 16, "%.2e", v);
	else if (v >= 100)
		snprintf(buf, 16, "%.0f", v);
	else if (v >= 10)
		snprintf(buf, 16, "%.1f", v);
	else
		snprintf(buf, 16, "%.2f", v);
	return buf;
}

static void print_columns(void)
{
	printf("%-5s %-2s %-6s|%6s|%-19s|%-20s|%-27s|%-20s|%6s|%5s|%6s\n",
	       "mem", "vc", "backnd", "popul", " write kpages/s", " logging on/off, ms",
	       " harvest ms per round", " harvest ns/d.page", "round", "ring", "after");
	printf("%-5s %-2s %-6s|%6s|%6s %6s %5s|%6s %6s %6s|%6s %6s %6s %6s|%6s %6s %6s|%6s|%5s|%6s\n",
	       "", "", "", "s", "off", "on", "on/of", "enable", "subscr", "disabl", "0%", "1%",
	       "10%", "100%", "1%", "10%", "100%", "us/pg", "full", "kp/s");
}

static void print_row(const struct bench_config *c, const struct bench_result *r)
{
	char b[16][16], mem[16];
	const struct bench_frac *f = r->frac;
	double overhead_us;
	unsigned int i;

	if (c->mem % (1ULL << 30) == 0)
		snprintf(mem, sizeof(mem), "%lluG", (unsigned long long)(c->mem >> 30));
	else
		snprintf(mem, sizeof(mem), "%lluM", (unsigned long long)(c->mem >> 20));
	/*
	 * The extra wall time of a 100% round over a pass with logging off
	 * (write faults, ring-full exits, the read after it) per dirty page.
	 */
	overhead_us = (1e6 / f[0].write_pps - 1e6 / r->write_off_pps) *
		      (double)r->test_pages / (double)f[0].dirty + f[0].read_ms * 1e3 / (double)f[0].dirty;
	printf("%-5s %-2u %-6s|%6s|%6s %6s %5.2f|%6s %6s %6s|%6s ",
	       mem, c->nr_vcpus, dirty__backend_name(c->backend), num(b[0], r->populate_s),
	       num(b[1], r->write_off_pps / 1e3), num(b[2], f[0].write_pps / 1e3),
	       f[0].write_pps / r->write_off_pps,
	       num(b[3], r->enable_ms), num(b[4], r->subscribe_ms), num(b[5], r->disable_ms),
	       num(b[15], r->empty_harvest_ms));
	/* Columns go 1%, 10%, 100%: the fractions are stored 100% first. */
	for (i = 0; i < BENCH_NR_FRACS; i++)
		printf("%6s%s", num(b[6 + i], f[BENCH_NR_FRACS - 1 - i].harvest_ms),
		       i + 1 < BENCH_NR_FRACS ? " " : "|");
	for (i = 0; i < BENCH_NR_FRACS; i++) {
		const struct bench_frac *x = &f[BENCH_NR_FRACS - 1 - i];

		printf("%6s%s", num(b[9 + i], x->harvest_ms * 1e6 / (double)(x->dirty ? x->dirty : 1)),
		       i + 1 < BENCH_NR_FRACS ? " " : "|");
	}
	printf("%6s|%5s|%6s", num(b[12], overhead_us), num(b[13], f[0].ring_full),
	       num(b[14], r->after_off_pps / 1e3));
	if (r->missed)
		printf("  MISSED %llu written pages!", (unsigned long long)r->missed);
	printf("\n");
	fflush(stdout);
}

static void print_legend(const struct options *o)
{
	printf("# columns: mem = guest RAM; vc = vCPUs; popul = first pass over every page "
	       "(fault-in), seconds;\n"
	       "#   write kp/s = guest writes, one 8-byte word per 4 KiB page, thousands of pages/s, "
	       "all vCPUs together,\n"
	       "#     with logging off and on (100%% round: every page was re-protected by the last "
	       "harvest); on/off = ratio;\n"
	       "#   enable = KVM part of turning logging on; subscr = all of dirty__subscribe "
	       "(enable + first harvest);\n"
	       "#     disabl = all of dirty__unsubscribe of the last subscriber (last harvest + "
	       "logging off);\n"
	       "#   harvest ms per round = all harvesting in one round at 0%%/1%%/10%%/100%% of the "
	       "pages dirty (0%%: a read right\n"
	       "#     after another, the fixed cost; ring: includes the harvests of "
	       "KVM_EXIT_DIRTY_RING_FULL during the pass);\n"
	       "#   harvest ns/d.page = the same divided by the pages the read returned;\n"
	       "#   round us/pg = extra wall time of a 100%% round over a pass with logging off "
	       "(faults, ring-full exits,\n"
	       "#     the read) per dirty page; ring full = KVM_EXIT_DIRTY_RING_FULL per 100%% round;\n"
	       "#   after kp/s = the first pass over every page after logging went off.\n"
	       "# medians of %u passes (%u for the passes over every page of guests above 1 GiB); "
	       "guest pages from 16 MiB to "
	       "the end of RAM, split evenly between the vCPUs;\n"
	       "# ring: %u bytes per vCPU; the harvester runs between passes, while no vCPU is in "
	       "KVM_RUN.\n",
	       o->passes, o->large_passes, o->ring_bytes ? o->ring_bytes : DIRTY_RING_DEFAULT_BYTES);
}

int main(int argc, char **argv)
{
	struct options o;
	struct baseline base;
	struct bench_config c;
	struct bench_result res;
	unsigned int m, v, b, failed = 0, missed = 0;
	const char *why;
	int r;

	if (parse_options(argc, argv, &o) != 0) {
		usage(stderr);
		return 2;
	}
	log_init("bench-dirty-log", LOG_WARN);
	if (o.check_kvm) {
		if ((why = kvm_test_unavailable()) != NULL) {
			printf("%s\n", why);
			return 3;
		}
		return 0;
	}
	print_machine();
	if (o.baseline || o.baseline_only) {
		if ((r = baseline__measure(o.baseline_mem, &base)) != 0) {
			fprintf(stderr, "bench-dirty-log: reference measurement: %s\n", km_strerror(r));
			return 1;
		}
		baseline__print("reference, a host process on this machine", &base);
	}
	fflush(stdout);
	if (o.baseline_only)
		return 0;
	if ((why = kvm_test_unavailable()) != NULL) {
		fprintf(stderr, "bench-dirty-log: %s\n", why);
		return 3;
	}
	print_columns();
	for (m = 0; m < o.nr_mem; m++) {
		bool large = o.mem[m] > (1ULL << 30);
		unsigned int nv = large ? o.nr_large_vcpus : o.nr_vcpus;

		for (v = 0; v < nv; v++) {
			for (b = 0; b < o.nr_backend; b++) {
				c = (struct bench_config){
					.mem = o.mem[m],
					.nr_vcpus = large ? o.large_vcpus[v] : o.vcpus[v],
					.backend = o.backend[b], .ring_bytes = o.ring_bytes,
					.passes = o.passes,
					.full_passes = large ? o.large_passes : o.passes,
				};
				if ((r = bench_run__config(&c, &res)) != 0) {
					fprintf(stderr, "bench-dirty-log: %llu MiB, %u vCPUs, %s: %s\n",
						(unsigned long long)(c.mem >> 20), c.nr_vcpus,
						dirty__backend_name(c.backend), km_strerror(r));
					failed++;
					continue;
				}
				print_row(&c, &res);
				fprintf(stderr, "bench-dirty-log: %llu MiB, %u vCPUs, %s: %.1f s\n",
					(unsigned long long)(c.mem >> 20), c.nr_vcpus,
					dirty__backend_name(c.backend), res.total_s);
				missed += res.missed != 0;
			}
		}
	}
	print_legend(&o);
	if (failed || missed)
		fprintf(stderr, "bench-dirty-log: %u configurations failed, %u missed pages\n",
			failed, missed);
	return failed || missed ? 1 : 0;
}
