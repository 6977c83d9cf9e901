/*
 * The sending side of a pre-copy migration: one thread in the VM's process
 * (migrate.h, docs/protocol.md).
 *
 * Timeline:
 *   setup    connect (+TLS), REC_HEADER + REC_VM_CONFIG, wait REC_ACCEPT
 *   bulk     subscribe to dirty pages (every page dirty), send every page
 *            ever written (holes of the memfd were never touched: skipped)
 *   rounds   read the pages dirtied since the last read, send them, until
 *            the expected downtime fits the limit (policy.c)
 *   stop     pause, read the last dirty pages, send them, the state, END
 *   switch   wait REC_READY, send REC_GO, wait REC_RUNNING, stop this VM
 * Reading a subscriber re-protects the pages before it returns them, so a
 * page the guest writes while it is being sent is dirty again in the next
 * round: a torn copy is always followed by a whole one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "pages.h"
#include "record.h"
#include "stream.h"
#include "kvm/kvm.h"
#include "kvm/state.h"
#include "kvm/vmrec.h"
#include "migrate/migrate.h"
#include "migrate/mig.h"

/* A full batch of pages: paced, to the stream's writer thread, accounted. */
static int send__batch(void *ctx, struct buf **payload, const struct pages_stats *st)
{
	struct mig *m = ctx;
	int r;

	/* The cap holds from a round's first byte: the batch waits until it is due. */
	if ((r = mig__pace(m, buf_len(*payload))) != 0 ||
	    (r = stream_put_owned(m->s, REC_PAGES, payload)) != 0)
		return r;
	mig__account(m, st);
	return mig__peer_spoke(m);
}

static int send__tick(void *ctx)
{
	return mig__check_cancel(ctx);
}

/*
 * Sends the pages of set. The bulk round skips memory never written: it
 * reads as zero on both sides, and reading it here would allocate it.
 */
static int send__set(struct mig *m, struct bitmap *set, bool bulk)
{
	uint64_t todo = 0, skipped = 0;
	int r;

	if (bulk) {
		/* What the bulk round will really send: the pages ever written (the memfd's). */
		memory__resident(&m->kvm->mem, &todo);
		mig__lock(m);
		m->st.remaining_pages = todo / KM_PAGE_SIZE;
		mig__unlock(m);
	}
	if ((r = vmrec_enc_set(&m->enc, set, bulk, send__tick, NULL, &skipped)) != 0)
		return r;
	if (bulk) {
		mig__lock(m);
		m->st.skipped_pages = skipped;
		mig__unlock(m);
	}
	return vmrec_enc_flush(&m->enc);
}

/* Waits for one record of type want; a REC_ERROR is the peer's refusal. */
/* Waits for a record of type want; its payload in *pp, *plen if asked (valid until the next read). */
static int send__expect(struct mig *m, uint32_t want, const char *what, const uint8_t **pp,
			uint32_t *plen)
{
	const uint8_t *p;
	uint32_t type, len;
	int r;

	/* A cancel while we wait for the peer cuts the link (migrate__cancel). */
	mig__set_waiting(m, true);
	r = stream_get(m->s, 64 * 1024, &type, &p, &len);
	mig__set_waiting(m, false);
	if (r != 0) {
		mig__fail(m, "waiting for %s: %s", what, km_strerror(r));
		return r;
	}
	if (type == REC_ERROR) {
		char text[200];

		migrate__error_text(p, len, text, sizeof(text));
		mig__fail(m, "the destination refused: %s", text);
		return KM_ERR_REFUSED;
	}
	if (type != want) {
		mig__fail(m, "waiting for %s: got record type %u", what, type);
		return KM_ERR_PEER;
	}
	if (pp) {
		*pp = p;
		*plen = len;
	}
	return 0;
}

static int send__setup(struct mig *m)
{
	struct buf *cfg = buf_new(64 * 1024);
	const uint8_t *p;
	uint64_t accepted, resident;
	uint32_t len;
	int r;

	if (!cfg)
		return -ENOMEM;
	if ((r = mig__connect(m)) != 0)
		goto out;
	/* What the destination will have to allocate, for its memory check (if known). */
	if (memory__resident(&m->kvm->mem, &resident) != 0)
		resident = 0;
	if ((r = stream_put_header(m->s, STREAM_MIGRATE, m->p.compress ? STREAM_CAP_LZ4 : 0)) ||
	    (r = state__save_config(m->kvm, cfg)) ||
	    (resident && (r = rec_put_field_u64(cfg, ST_CFG_RESIDENT, resident))) ||
	    (r = stream_put(m->s, REC_VM_CONFIG, buf_ptr(cfg), (uint32_t)buf_len(cfg))) ||
	    (r = stream_flush(m->s))) {
		mig__fail(m, "sending the VM config: %s", km_strerror(r));
		goto out;
	}
	if ((r = send__expect(m, REC_ACCEPT, "the destination to accept the VM", &p, &len)) != 0)
		goto out;
	/* Field 1: the caps it accepted; absent from older peers, which took all or refused. */
	if (rec_find_u64(p, len, 1, &accepted) == 0 && m->p.compress &&
	    !(accepted & STREAM_CAP_LZ4)) {
		log_info("migration of %s: the destination does not take lz4; pages go raw",
			 m->kvm->name);
		m->p.compress = false;
	}
out:
	buf_free(cfg);
	return r;
}

/* Pre-copy rounds until the policy says stop-and-copy (0) or give up. */
static int send__rounds(struct mig *m, struct bitmap *dirty)
{
	struct kvm *kvm = m->kvm;
	uint64_t n;
	int64_t got;
	int r, verdict;

	for (;;) {
		got = dirty__read(&kvm->dirty, m->sub, dirty);
		if (got < 0)
			return (int)got;
		n = (uint64_t)got;
		verdict = mig__policy(m, n);
		if (verdict != POLICY_CONTINUE) {
			/* These pages are read: the stop-and-copy sends them (dirty). */
			return verdict == POLICY_STOP_AND_COPY ? 0 : KM_ERR_TIMEOUT;
		}
		mig__begin_round(m, n);
		if ((r = send__set(m, dirty, m->st.rounds == 0)) != 0)
			return r;
		if ((r = migrate__put_u64(m->s, REC_ROUND_END, m->st.rounds)) != 0 ||
		    (r = stream_flush(m->s)) != 0)
			return r;
		/*
		 * The round ends when the destination has applied it: the rate
		 * that predicts the downtime is the end-to-end one, not how
		 * fast pages left here (well-compressed pages leave far faster
		 * than the destination can fault them in).
		 */
		if ((r = send__expect(m, REC_ROUND_ACK, "the destination to apply the round", NULL,
					 NULL)) != 0)
			return r;
		mig__end_round(m);
		if ((r = mig__check_cancel(m)) != 0)
			return r;
	}
}

/* Paused: the last dirty pages, the state, END; then the handshake. */
static int send__stop_and_copy(struct mig *m, struct bitmap *dirty)
{
	struct kvm *kvm = m->kvm;
	struct bitmap last;
	struct buf *state = NULL;
	const uint8_t *p;
	uint32_t len;
	uint64_t cpu;
	int64_t got;
	int r;

	if ((r = bitmap_init(&last, memory__nr_pages(&kvm->mem))) != 0)
		return r;
	if ((r = mig__pause(m)) != 0)
		goto out;
	if ((got = dirty__read(&kvm->dirty, m->sub, &last)) < 0) {
		r = (int)got;
		goto out;
	}
	/* What the last round read but did not send, plus what came since. */
	bitmap_or_at(&last, 0, dirty->words, last.nbits);
	mig__set_status(m, MIGRATE_DEVICE);
	mig__begin_round(m, bitmap_count(&last));
	if ((r = send__set(m, &last, m->st.rounds == 0)) != 0)
		goto out;
	if (!(state = buf_new(REC_MAX_PAYLOAD))) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = state__save_all(kvm, state)) != 0) {
		mig__fail(m, "capturing the VM state: %s", km_strerror(r));
		goto out;
	}
	m->capture_realtime_ns = kvm__wall_ns();
	if ((r = stream_put_framed(m->s, buf_ptr(state), buf_len(state))) != 0 ||
	    (r = mig__put_end(m)) != 0 || (r = stream_flush(m->s)) != 0)
		goto out;
	mig__lock(m);
	mig__trace_round(m, kvm__now_ns() - m->round_t0);
	mig__unlock(m);
	if ((r = send__expect(m, REC_READY, "the destination to load the VM", &p, &len)) != 0)
		goto out;
	/* Field 1: the CPU time the destination spent receiving (optional). */
	if (rec_find_u64(p, len, 1, &cpu) == 0) {
		mig__lock(m);
		m->st.destination_cpu_ns = cpu;
		mig__unlock(m);
	}
	/* From here on the destination may run the VM: never resume this one blindly. */
	if ((r = mig__go(m)) != 0)
		goto out;
out:
	buf_free(state);
	bitmap_free(&last);
	return r;
}

void *mig__thread(void *arg)
{
	struct mig *m = arg;
	struct bitmap dirty = { 0 };
	int r;

	pthread_setname_np(pthread_self(), "migrate");
	if ((r = send__setup(m)) != 0)
		goto out;
	mig__setup_done(m);
	/* From here on, encrypting and sending overlap preparing the next batch. */
	if ((r = stream_start_writer(m->s, VMREC_BATCH)) != 0 ||
	    (r = vmrec_enc_init(&m->enc, m->kvm, m->p.compress, send__batch, m)) != 0)
		goto out;
	if ((r = bitmap_init(&dirty, memory__nr_pages(&m->kvm->mem))) != 0)
		goto out;
	m->sub = dirty__subscribe(&m->kvm->dirty, "migration", true);
	if (m->sub < 0) {
		r = m->sub;
		goto out;
	}
	r = send__rounds(m, &dirty);
	if (r == KM_ERR_TIMEOUT && m->p.on_limit == MIGRATE_LIMIT_FORCE)
		r = 0;
	if (r == 0)
		r = send__stop_and_copy(m, &dirty);
out:
	mig__finish(m, r);
	vmrec_enc_free(&m->enc);
	bitmap_free(&dirty);
	if (m->st.status == MIGRATE_COMPLETED)
		mig__linger_and_stop(m);
	return NULL;
}
