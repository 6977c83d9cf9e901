/* The VM as records, capture side: pages into REC_PAGES payloads (vmrec.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "kvm/kvm.h"
#include "kvm/vmrec.h"

/*
 * Adaptive lz4: after this many pages in a row that lz4 could not shrink,
 * only every LZ4_PROBE_EVERY-th page is tried until one compresses again.
 * Guest data comes in runs (a heap of random data, a page cache of text),
 * so this spends almost nothing on incompressible runs and loses little
 * on compressible ones.
 */
#define LZ4_MISS_LIMIT	64
#define LZ4_PROBE_EVERY	32

int vmrec_enc_init(struct vmrec_enc *e, struct kvm *kvm, bool compress, vmrec_batch_fn batch,
		   void *ctx)
{
	memset(e, 0, sizeof(*e));
	e->kvm = kvm;
	e->compress = compress;
	e->batch = batch;
	e->ctx = ctx;
	if (!(e->payload = buf_new(VMREC_BATCH)))
		return -ENOMEM;
	/* Filled and emptied a thousand times: keep its memory. */
	buf_set_bulk(e->payload);
	return 0;
}

void vmrec_enc_free(struct vmrec_enc *e)
{
	buf_free(e->payload);
	e->payload = NULL;
}

int vmrec_enc_flush(struct vmrec_enc *e)
{
	struct pages_stats st = e->acc;
	int r;

	if (buf_len(e->payload) == 0)
		return 0;
	memset(&e->acc, 0, sizeof(e->acc));
	if ((r = e->batch(e->ctx, &e->payload, &st)) != 0)
		return r;
	return 0;
}

int vmrec_enc_page(struct vmrec_enc *e, uint64_t n, const uint8_t *page)
{
	const struct kvm_memory *mem = &e->kvm->mem;
	uint64_t lz4_before, raw_before, gpa = memory__gpa_of(mem, n);
	bool lz4 = e->compress &&
		   (e->lz4_misses < LZ4_MISS_LIMIT || ++e->lz4_probe % LZ4_PROBE_EVERY == 0);
	int r;

	if (!page)
		page = memory__page_hva(mem, n);
	lz4_before = e->acc.lz4;
	raw_before = e->acc.raw;
	r = pages_put(e->payload, gpa, page, lz4, &e->acc);
	if (r == KM_ERR_NO_SPACE) {
		if ((r = vmrec_enc_flush(e)) != 0)
			return r;
		lz4_before = raw_before = 0;	/* acc was handed over and reset */
		r = pages_put(e->payload, gpa, page, lz4, &e->acc);
	}
	if (r)
		return r;
	if (e->acc.lz4 != lz4_before)
		e->lz4_misses = 0;
	else if (lz4 && e->acc.raw != raw_before)
		e->lz4_misses++;
	return 0;
}

int vmrec_enc_set(struct vmrec_enc *e, const struct bitmap *set, bool never_touched,
		  int (*tick)(void *ctx), uint64_t *sent, uint64_t *skipped)
{
	const struct kvm_memory *mem = &e->kvm->mem;
	uint64_t n, start, end, off = 0, done = 0;
	int r = 0;

	if (!never_touched) {
		for (n = bitmap_next_set(set, 0); n < set->nbits; n = bitmap_next_set(set, n + 1)) {
			if ((r = vmrec_enc_page(e, n, NULL)) != 0)
				goto out;
			if (++done % 256 == 0 && tick && (r = tick(e->ctx)) != 0)
				goto out;
		}
		goto out;
	}
	/* Only the memfd's data ranges: the rest was never written. */
	while ((r = memory__next_data(mem, off, &start, &end)) == 0) {
		for (n = start / KM_PAGE_SIZE; n < (end + KM_PAGE_SIZE - 1) / KM_PAGE_SIZE; n++) {
			if (!bitmap_test(set, n))
				continue;
			if ((r = vmrec_enc_page(e, n, NULL)) != 0)
				goto out;
			if (++done % 256 == 0 && tick && (r = tick(e->ctx)) != 0)
				goto out;
		}
		off = end;
	}
	if (r == KM_ERR_END)
		r = 0;
	if (r == 0 && skipped)
		*skipped = bitmap_count(set) - done;
out:
	if (sent)
		*sent = done;
	return r;
}
