/*
 * libFuzzer target for the dirty-trace reader (lib/dtrace.c). Each input is
 * read twice: as it is (framing, checksums) and reframed with every
 * record's checksum made right, so that the mutator's changes reach the
 * payload checks (geometry, runs, bitmaps, counts). An accepted trace must
 * keep the reader's promises: runs ascending, disjoint, inside the guest,
 * adding up to each interval's and the trace's page counts.
 *
 * Not built by make (gcc has no -fsanitize=fuzzer): scripts/fuzz --target
 * dtrace builds and runs it with clang. With -DFUZZ_MAKE_SEEDS it is
 * instead a program that writes a seed corpus of valid traces (sparse
 * runs, dense bitmaps, with and without progress, empty intervals) into
 * the directory it is given.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitmap.h"
#include "buf.h"
#include "chan.h"
#include "dtrace.h"
#include "err.h"
#include "record.h"

/*
 * The transport, which the stream code beside the header helpers the reader
 * uses would call: a trace is read from memory, so none of it ever runs.
 */
int chan_write(struct chan *c, const void *data, size_t len)
{
	abort();
}

int64_t chan_read(struct chan *c, void *data, size_t len)
{
	abort();
}

int chan_set_timeout(struct chan *c, int timeout_ms)
{
	abort();
}

int chan_read_full(struct chan *c, void *data, size_t len)
{
	abort();
}

static void check_promises(const struct dtrace *t)
{
	uint64_t i, k, sum = 0, pages, end;

	for (i = 0; i < t->nr_iv; i++) {
		const struct dtrace_interval *iv = &t->iv[i];

		if (iv->index != i || iv->first_run + iv->nr_runs > t->nr_runs)
			abort();
		for (k = 0, pages = 0, end = 0; k < iv->nr_runs; k++) {
			const struct dtrace_run *r = &t->runs[iv->first_run + k];

			if (r->len == 0 || (k && r->start <= end) ||
			    r->start + r->len > t->info.guest_pages)
				abort();
			end = r->start + r->len;
			pages += r->len;
		}
		if (pages != iv->pages)
			abort();
		sum += pages;
	}
	if (sum != t->total_pages)
		abort();
}

static void parse(const uint8_t *d, size_t n)
{
	struct dtrace *t = NULL;
	char err[256];

	if (dtrace__parse(d, n, &t, err, sizeof(err)) == 0) {
		check_promises(t);
		dtrace__free(t);
	} else if (t || !err[0]) {
		abort();	/* a refusal leaves nothing, and says why */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct buf *out;
	uint32_t type, len;
	size_t off = 0;

	parse(d, n);
	/* Reframed: each record's checksum made right, a cut tail kept cut. */
	if (!(out = buf_new(n + 64)))
		return 0;
	while (off + REC_HDR_SIZE <= n) {
		memcpy(&type, d + off, 4);
		memcpy(&len, d + off + 4, 4);
		if (len > n - off - REC_HDR_SIZE)
			break;
		if (rec_put(out, type, d + off + REC_HDR_SIZE, len) != 0)
			break;
		off += REC_HDR_SIZE + len;
	}
	if (off < n)
		buf_put(out, d + off, n - off);
	parse(buf_ptr(out), buf_len(out));
	buf_free(out);
	return 0;
}

#ifdef FUZZ_MAKE_SEEDS
/* One seed: n intervals over pages guest pages; shape picks what each writes. */
static int seed(const char *dir, int k, uint64_t pages, unsigned int n, int shape)
{
	struct dtrace_info info = { .page_size = 4096, .guest_pages = pages, .interval_ms = 50,
				    .vcpus = 2, .start_wall_ns = 1700000000000000000ULL };
	struct dtrace_cost cost = { .cpu_ns = 1000, .harvest_ns = 500, .write_ns = 300 };
	struct dtrace_writer *w = NULL;
	struct bitmap b = { 0 };
	char path[4096];
	uint64_t prog, p;
	unsigned int i;
	int fd, r;

	snprintf(path, sizeof(path), "%s/seed-%d", dir, k);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
		return -1;
	if ((r = bitmap_init(&b, pages)) != 0 || (r = dtrace__writer_new(fd, &info, &w)) != 0)
		goto out;
	for (i = 0; i < n && r == 0; i++) {
		bitmap_clear_all(&b);
		if (shape == 0)			/* a few runs */
			bitmap_set_range(&b, (i * 37) % (pages - 8), 1 + i % 7);
		else if (shape == 1)		/* dense: a bitmap's worth */
			for (p = i % 2; p < pages; p += 2)
				bitmap_set(&b, p);
		else if (i % 3)			/* sometimes nothing, sometimes a block */
			bitmap_set_range(&b, 0, pages / 4);
		prog = 1000ULL * i;
		r = dtrace__put_interval(w, 50000000ULL + i, shape == 2 ? NULL : &prog, &b);
	}
	if (r == 0)
		r = dtrace__finish(w, &cost);
out:
	dtrace__writer_free(w);
	bitmap_free(&b);
	close(fd);
	return r;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	if (seed(argv[1], 0, 4096, 12, 0) || seed(argv[1], 1, 1024, 4, 1) ||
	    seed(argv[1], 2, 65536, 9, 2) || seed(argv[1], 3, 64, 1, 0)) {
		fprintf(stderr, "%s: cannot write the seeds\n", argv[0]);
		return 1;
	}
	return 0;
}
#endif
