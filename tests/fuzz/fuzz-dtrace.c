/*
 * libFuzzer target for the dirty-trace reader (lib/dtrace.c). Each input is
 * read twice: as it is (framing, checksums) and reframed with every
 * record's checksum made right, so that the mutator's changes reach the
 * payload checks (geometry, runs, bitmaps, counts). An accepted trace must
 * keep the reader's promises: runs ascending, disjoint, inside the guest,
 * adding up to each interval's and the trace's page counts.
 *
 * Not built by make (gcc has no -fsanitize=fuzzer); by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Ilib -Ibuild \
 *     tests/fuzz/fuzz-dtrace.c lib/dtrace.c lib/record.c lib/buf.c lib/bitmap.c \
 *     lib/stream.c lib/stream-async.c lib/stream-reader.c lib/err.c lib/log.c \
 *     lib/pages.c -llz4 -lxxhash -o fuzz-dtrace
 *   ./fuzz-dtrace -max_total_time=60 CORPUS
 * (a corpus: traces from kvm-run --record-dirty, or tests/unit/test-dtrace's).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dtrace.h"
#include "err.h"
#include "record.h"

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
