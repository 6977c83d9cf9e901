/* Checkpoints of a running VM: see checkpoint.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "qmp.h"
#include "record.h"
#include "stream.h"
#include "kvm/control.h"
#include "kvm/kvm.h"
#include "kvm/state.h"
#include "kvm/throttle.h"
#include "kvm/virtio-blk.h"
#include "kvm/vmrec.h"
#include "snapshot/checkpoint.h"
#include "snapshot/ckptfile.h"
#include "snapshot/store.h"

/*
 * A line of checkpoints: a store, a dirty subscriber, and what its next
 * checkpoint owes. The VM's periodic checkpoints are one; a live snapshot
 * into another directory (checkpoint__save_to) is a line of its own for
 * the time it takes, so neither disturbs the other's accounting.
 */
struct ckpt_line {
	struct kvm *kvm;
	struct store *st;
	int sub;			/* dirty subscriber */
	bool compress;
	unsigned int chain_max, keep;
	struct bitmap owed;		/* read from the tracker, not yet in a committed checkpoint */
	struct bitmap todo, got;	/* scratch */
	/* A writable disk's blocks, as the pages above (kvm/virtio-blk.h trackers). */
	int dsub;			/* its dirty-block tracker, -1 if no writable disk */
	struct bitmap downed, dtodo, dgot;
	uint64_t parent;		/* the last committed checkpoint: 0 until one is */
	unsigned int chain;		/* increments since the base */
};

struct ckpt {
	struct kvm *kvm;
	struct checkpoint_params p;
	struct ckpt_line line;		/* the VM's own checkpoints */
	pthread_t thread;
	bool started;

	pthread_mutex_t lock;		/* everything below */
	pthread_cond_t cond;
	bool stop;
	uint64_t due_ns;		/* next periodic checkpoint (0: none) */
	bool req_full, req_hash;	/* asked for: a base, a memory hash */
	uint64_t req_seq, done_seq;	/* requests made / answered */
	uint64_t running_seq;		/* the request the checkpoint under way answers */
	int req_r;
	struct checkpoint_result req_res;
	char req_err[256];
	struct checkpoint_stats stats;
};

/*
 * One capture at a time: the VM's checkpoints and a live snapshot share
 * the one KVM_HOLD_CHECKPOINT, which the first to finish would lift.
 */
void checkpoint__disk_json(struct kvm *kvm, json_t *o, const struct checkpoint_result *res)
{
	if (!o || !kvm->blk || virtio_blk__ro(kvm->blk))
		return;
	json_object_set_new(o, "disk-blocks", json_integer((json_int_t)res->disk_blocks));
	json_object_set_new(o, "pause-blocks", json_integer((json_int_t)res->pause_blocks));
}

static pthread_mutex_t ckpt__capture_lock = PTHREAD_MUTEX_INITIALIZER;

static struct ckpt ckpt__g = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
	.line = { .sub = -1, .dsub = -1 },
};

/* What one attempt needs besides the thread's state. */
struct attempt {
	struct ckpt_line *c;
	struct store_pending pend;
	struct chan *chan;
	struct stream *s;
	struct vmrec_enc enc;
	struct ckptfile_index index;	/* of its pages: for a lazy restore */
	uint8_t *copies;		/* pages copied at the capture */
	struct vmrec_disk_enc denc;	/* the disk's blocks, if c->dsub >= 0 */
	uint8_t *dcopies;		/* blocks copied at the capture */
	uint64_t pause_blocks;		/* copied in the pause */
	struct buf *state;
	uint64_t id, pages, pause_ns, time_ns, hash;
	uint64_t pause_pages;		/* copied in the pause */
	unsigned int rounds, throttle_pct;
	struct kvm_throttle th;		/* on from the pre-copy until the pause holds the vCPUs */
	bool full, want_hash, paused;
	char err[256];
};

static int ckpt__batch(void *ctx, struct buf **payload, const struct pages_stats *st)
{
	struct attempt *a = ctx;

	a->pages += st->pages;
	return ckptfile_put_pages(a->s, &a->index, payload);
}

static int ckpt__disk_batch(void *ctx, const uint8_t *p, uint32_t len)
{
	struct attempt *a = ctx;

	return stream_put(a->s, REC_DISK_BLOCKS, p, len);
}

/* Reads the disk's tracker into c->dgot (cleared first), owed until a commit. */
static void ckpt__disk_read(struct ckpt_line *c)
{
	bitmap_clear_all(&c->dgot);
	virtio_blk__dirty_read(c->kvm->blk, c->dsub, &c->dgot);
	bitmap_or_at(&c->downed, 0, c->dgot.words, c->dgot.nbits);
}

/*
 * Calls fn for each run of at most CKPT_DISK_RUN blocks of set, read
 * from the image into buf (CKPT_DISK_RUN blocks) or, with dst, into dst
 * (a block per set bit, in order) and then handed to the encoder.
 */
#define CKPT_DISK_RUN	256
static int ckpt__disk_copy(struct attempt *a, const struct bitmap *set, uint8_t *dst)
{
	struct virtio_blk *blk = a->c->kvm->blk;
	uint8_t *buf = dst, *own = NULL;
	uint64_t n, k, i;
	int r = 0;

	if (!dst && !(buf = own = malloc((size_t)CKPT_DISK_RUN * VIRTIO_BLK_BLOCK)))
		return -ENOMEM;
	for (n = bitmap_next_set(set, 0); n < set->nbits; n = bitmap_next_set(set, n + k)) {
		for (k = 1; k < CKPT_DISK_RUN && n + k < set->nbits && bitmap_test(set, n + k); k++)
			;
		if ((r = virtio_blk__read_blocks(blk, n, k, buf)) != 0)
			break;
		if (dst) {
			buf += k * VIRTIO_BLK_BLOCK;
			continue;
		}
		for (i = 0; i < k; i++)
			if ((r = vmrec_disk_enc_block(&a->denc, n + i, buf + i * VIRTIO_BLK_BLOCK)) != 0)
				goto out;
	}
out:
	free(own);
	return r;
}

/*
 * The disk's pre-copy, before the pages': a base copies every block of
 * the image while the guest runs, an increment the blocks owed; then the
 * blocks written meanwhile, round after round until at most
 * CKPT_PAUSE_BLOCKS are left for the pause (CKPT_MAX_ROUNDS at most: a
 * guest that writes its disk faster than it is copied is slowed by the
 * pages' throttle only, so its pause copies what is left).
 */
static int ckpt__disk_precopy(struct attempt *a)
{
	struct ckpt_line *c = a->c;
	unsigned int round;
	int r;

	if (c->dsub < 0)
		return 0;
	ckpt__disk_read(c);
	if (a->full)
		bitmap_fill(&c->dtodo);
	else
		memcpy(c->dtodo.words, c->downed.words, BITMAP_WORDS(c->downed.nbits) * 8);
	for (round = 0; round < CKPT_MAX_ROUNDS && bitmap_count(&c->dtodo) > CKPT_PAUSE_BLOCKS;
	     round++) {
		if ((r = ckpt__disk_copy(a, &c->dtodo, NULL)) != 0)
			return r;
		ckpt__disk_read(c);
		memcpy(c->dtodo.words, c->dgot.words, BITMAP_WORDS(c->dgot.nbits) * 8);
	}
	return 0;
}

/* Reads the tracker into a->c->got, and owes those pages until a commit. */
static int ckpt__read(struct ckpt_line *c)
{
	int64_t n = dirty__read(&c->kvm->dirty, c->sub, &c->got);

	if (n < 0)
		return (int)n;
	bitmap_or_at(&c->owed, 0, c->got.words, c->got.nbits);
	return 0;
}

/* todo = the pages of guest RAM ever written (the memfd's data ranges). */
static int ckpt__touched(struct ckpt_line *c)
{
	uint64_t start, end, off = 0;
	int r;

	bitmap_clear_all(&c->todo);
	while ((r = memory__next_data(&c->kvm->mem, off, &start, &end)) == 0) {
		bitmap_set_range(&c->todo, start / KM_PAGE_SIZE,
				 (end + KM_PAGE_SIZE - 1) / KM_PAGE_SIZE - start / KM_PAGE_SIZE);
		off = end;
	}
	return r == KM_ERR_END ? 0 : r;
}

/* Header, identity and config: what every checkpoint file starts with. */
static int ckpt__open_file(struct attempt *a)
{
	struct buf *b = buf_new(64 * 1024);
	int fd, r;

	if (!b)
		return -ENOMEM;
	/* The store keeps its fd (its lock marks the file alive): the stream gets a copy. */
	if ((fd = fcntl(a->pend.fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		r = km_errno();
		goto out;
	}
	if ((r = chan_file(fd, a->pend.tmp, &a->chan)) != 0) {
		close(fd);
		goto out;
	}
	if (!(a->s = stream_new(a->chan))) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = stream_put_header(a->s, STREAM_SNAPSHOT,
				   a->c->compress ? STREAM_CAP_LZ4 : 0)) != 0 ||
	    (r = ckptfile_put_identity(a->s, a->id, a->full ? 0 : a->c->parent,
				       a->full ? STORE_FULL : STORE_INCR, a->c->kvm->name)) != 0 ||
	    (r = state__save_config(a->c->kvm, b)) != 0 ||
	    (r = stream_put(a->s, REC_VM_CONFIG, buf_ptr(b), (uint32_t)buf_len(b))) != 0)
		goto out;
out:
	buf_free(b);
	return r;
}

/*
 * Pre-copy into the file while the guest runs, until few pages are left.
 * A guest that dirties pages faster than they are written would make the
 * pause as long as its dirty set: when a round does not halve what is
 * left, the vCPUs are slowed down a step more (kvm/throttle.h: 20 %, then
 * +20 up to 99 %), so that the pause stays bounded whatever the guest
 * does; CKPT_MAX_ROUNDS rounds at most. The throttle stays on until the
 * capture holds the vCPUs (lifted earlier, the guest would write at full
 * speed between the last read and the pause, and those pages are the
 * pause's: 2354 of a 2048-page bound, in the sandbox), and the most it
 * reached is reported.
 */
static int ckpt__precopy(struct attempt *a)
{
	struct ckpt_line *c = a->c;
	struct kvm_throttle *th = &a->th;
	bool first = a->full;
	uint64_t left, before;
	unsigned int round, pct;
	int r;

	if ((r = ckpt__disk_precopy(a)) != 0 || (r = ckpt__read(c)) != 0)
		return r;
	if (a->full) {
		if ((r = ckpt__touched(c)) != 0)
			return r;
	} else {
		/* Everything owed: this read, and whatever failed checkpoints did not save. */
		memcpy(c->todo.words, c->owed.words, BITMAP_WORDS(c->owed.nbits) * 8);
	}
	left = bitmap_count(&c->todo);
	for (round = 0; round < CKPT_MAX_ROUNDS && left > CKPT_PAUSE_PAGES; round++) {
		/* A base's first round walks data ranges only: holes read as zero anyway. */
		if ((r = vmrec_enc_set(&a->enc, &c->todo, first, NULL, NULL, NULL)) != 0)
			break;
		first = false;
		if ((r = ckpt__read(c)) != 0)
			break;
		memcpy(c->todo.words, c->got.words, BITMAP_WORDS(c->got.nbits) * 8);
		before = left;
		left = bitmap_count(&c->todo);
		if (left > CKPT_PAUSE_PAGES && left > before / 2) {
			pct = throttle__pct(th);
			throttle__set(th, pct ? pct + 20 : 20);
			a->throttle_pct = throttle__pct(th);
		}
	}
	a->rounds = round;
	if (a->throttle_pct)
		log_info("checkpoint %llu of %s: the guest outran the copy: throttled up to %u%%, "
			 "%u rounds, %llu pages left for the pause", (unsigned long long)a->id,
			 c->kvm->name, a->throttle_pct, round, (unsigned long long)left);
	return r;
}

/*
 * The pause: the last dirty pages copied, the state captured. The copies
 * are taken only of pages ever written when this is a base that had no
 * pre-copy round (todo came from the data ranges).
 */
static int ckpt__capture(struct attempt *a)
{
	struct ckpt_line *c = a->c;
	struct kvm *kvm = c->kvm;
	uint64_t t0, n, i = 0, count;
	int r, r2;

	pthread_mutex_lock(&ckpt__capture_lock);
	r = kvm__hold(kvm, KVM_HOLD_CHECKPOINT);
	t0 = kvm__now_ns();
	throttle__stop(&a->th);	/* (the pause holds the vCPUs now; its time counts in it) */
	if (r != 0) {
		pthread_mutex_unlock(&ckpt__capture_lock);
		return r;
	}
	/*
	 * Stopped by its user: a restore starts it stopped too. A migration's
	 * hold (its stop-and-copy) is no stop the user asked for: the VM runs
	 * again wherever the migration ends, and so does its restore.
	 */
	a->paused = (kvm__holds(kvm) & KVM_HOLD_USER) != 0;
	if ((r = ckpt__read(c)) != 0)
		goto out;
	bitmap_or_at(&c->todo, 0, c->got.words, c->got.nbits);
	a->pause_pages = count = bitmap_count(&c->todo);
	if (count && !(a->copies = malloc(count * KM_PAGE_SIZE))) {
		r = -ENOMEM;
		goto out;
	}
	for (n = bitmap_next_set(&c->todo, 0); n < c->todo.nbits;
	     n = bitmap_next_set(&c->todo, n + 1))
		memcpy(a->copies + (i++) * KM_PAGE_SIZE, memory__page_hva(&kvm->mem, n),
		       KM_PAGE_SIZE);
	/* The disk of the same instant: no request is in flight while the VM is held. */
	if (c->dsub >= 0) {
		ckpt__disk_read(c);
		bitmap_or_at(&c->dtodo, 0, c->dgot.words, c->dgot.nbits);
		a->pause_blocks = count = bitmap_count(&c->dtodo);
		if (count && !(a->dcopies = malloc(count * VIRTIO_BLK_BLOCK))) {
			r = -ENOMEM;
			goto out;
		}
		if ((r = ckpt__disk_copy(a, &c->dtodo, a->dcopies)) != 0)
			goto out;
	}
	if ((r = state__save_all(kvm, a->state)) != 0)
		goto out;
	a->time_ns = kvm__wall_ns();
	if (a->want_hash && (r = memory__hash(&kvm->mem, &a->hash)) != 0)
		goto out;
out:
	a->pause_ns = kvm__now_ns() - t0;
	r2 = kvm__release(kvm, KVM_HOLD_CHECKPOINT);
	pthread_mutex_unlock(&ckpt__capture_lock);
	return r ? r : r2;
}

/* The copies, the state and the end, while the guest runs. */
static int ckpt__finish_file(struct attempt *a)
{
	struct ckpt_line *c = a->c;
	struct ckptfile_end end = {
		.capture_ns = a->time_ns, .paused = a->paused, .pause_ns = a->pause_ns,
		.hash = a->hash, .has_hash = a->want_hash,
	};
	uint64_t n, i = 0;
	int r;

	for (n = bitmap_next_set(&c->todo, 0); n < c->todo.nbits;
	     n = bitmap_next_set(&c->todo, n + 1))
		if ((r = vmrec_enc_page(&a->enc, n, a->copies + (i++) * KM_PAGE_SIZE)) != 0)
			return r;
	if (c->dsub >= 0) {
		i = 0;
		for (n = bitmap_next_set(&c->dtodo, 0); n < c->dtodo.nbits;
		     n = bitmap_next_set(&c->dtodo, n + 1))
			if ((r = vmrec_disk_enc_block(&a->denc, n,
						      a->dcopies + (i++) * VIRTIO_BLK_BLOCK)) != 0)
				return r;
		if ((r = vmrec_disk_enc_flush(&a->denc)) != 0)
			return r;
		end.has_disk = true;
		end.disk_blocks = a->denc.blocks;
	}
	if ((r = vmrec_enc_flush(&a->enc)) != 0 || (r = ckptfile_put_index(a->s, &a->index)) != 0 ||
	    (r = stream_put_framed(a->s, buf_ptr(a->state), buf_len(a->state))) != 0)
		return r;
	end.pages = a->pages;
	if ((r = ckptfile_put_end(a->s, &end)) != 0)
		return r;
	return stream_flush(a->s);
}

/* Retention after a commit: keep the newest keep restorable, drop the rest. */
static void ckpt__retain(struct ckpt_line *c)
{
	struct store_entry *e = NULL;
	uint64_t *del = NULL;
	size_t n = 0, ndel = 0;
	char err[256] = "";

	if (!c->keep || store__list(c->st, &e, &n, err, sizeof(err)) != 0 || n <= c->keep)
		goto out;
	if (!(del = calloc(n, sizeof(*del))) ||
	    store__prune_plan(e, n, c->keep, del, &ndel) != 0)
		goto out;
	if (ndel && store__remove(c->st, del, ndel, err, sizeof(err)) != 0)
		log_warn("checkpoints of %s: pruning: %s", c->kvm->name, err);
out:
	if (err[0] && !ndel)
		log_warn("checkpoints of %s: %s", c->kvm->name, err);
	free(del);
	free(e);
}

/*
 * Whether checkpoint id is still listed: a compaction (kvm-snapshot
 * compact) may have replaced it, and then the next checkpoint is a base.
 * Should it happen between this check and the commit, that commit fails,
 * its pages stay owed, and the next attempt finds the parent gone.
 */
static bool ckpt__listed(struct ckpt_line *c, uint64_t id)
{
	struct store_entry *e = NULL;
	size_t n = 0, i;
	bool found = false;

	if (store__list(c->st, &e, &n, NULL, 0) != 0)
		return true;	/* let the commit tell */
	for (i = 0; i < n && !found; i++)
		found = e[i].id == id;
	free(e);
	return found;
}

static void ckpt__attempt_free(struct attempt *a)
{
	throttle__stop(&a->th);	/* (a failure before the capture: the guest runs free again) */
	if (a->pend.fd >= 0)
		store__abort(a->c->st, &a->pend);
	stream_free(a->s);
	chan_close(a->chan);
	vmrec_enc_free(&a->enc);
	vmrec_disk_enc_free(&a->denc);
	ckptfile_index_free(&a->index);
	buf_free(a->state);
	free(a->copies);
	free(a->dcopies);
}

/* Whether the next checkpoint of c is a base, short of asking the store (ckpt__listed). */
static bool ckpt__base_due(const struct ckpt_line *c, bool full)
{
	return full || !c->parent || c->chain >= c->chain_max;
}

/*
 * One checkpoint, start to commit. 0 and what it did in res, or the error
 * with the reason in err; res then holds as much as the attempt got to
 * (its id, 0 if it failed before the store gave one), for the event.
 */
static int ckpt__take(struct ckpt_line *c, bool full, bool hash,
		      struct checkpoint_result *res, char *err, size_t errlen)
{
	struct attempt a = { .c = c, .pend = { .fd = -1 }, .want_hash = hash };
	struct store_entry e = { 0 };
	uint64_t t0 = kvm__now_ns();
	const char *step = "starting";
	int r;

	throttle__init(&a.th, c->kvm, KVM_HOLD_CKPT_THROTTLE);
	a.full = ckpt__base_due(c, full) || !ckpt__listed(c, c->parent);
	if ((r = store__begin(c->st, &a.pend, err, errlen)) != 0)
		goto out_noerr;
	a.id = a.pend.id;
	if (!(a.state = buf_new(REC_MAX_PAYLOAD)) ||
	    (r = ckptfile_index_init(&a.index)) != 0 ||
	    (r = vmrec_enc_init(&a.enc, c->kvm, c->compress, ckpt__batch, &a)) != 0 ||
	    (c->dsub >= 0 && (r = vmrec_disk_enc_init(&a.denc, virtio_blk__size(c->kvm->blk),
						       c->compress, ckpt__disk_batch, &a)) != 0)) {
		r = r ? r : -ENOMEM;
		goto out;
	}
	step = "writing";
	if ((r = ckpt__open_file(&a)) != 0 || (r = ckpt__precopy(&a)) != 0)
		goto out;
	step = "capturing";
	if ((r = ckpt__capture(&a)) != 0)
		goto out;
	step = "writing";
	if ((r = ckpt__finish_file(&a)) != 0)
		goto out;
	e.kind = a.full ? STORE_FULL : STORE_INCR;
	e.parent = a.full ? 0 : c->parent;
	e.time_ns = a.time_ns;
	e.pages = a.pages;
	e.pause_ns = a.pause_ns;
	if ((r = store__commit(c->st, &a.pend, &e, err, errlen)) != 0)
		goto out_noerr;
	/* Every page and block owed is in a committed checkpoint now. */
	bitmap_clear_all(&c->owed);
	if (c->dsub >= 0)
		bitmap_clear_all(&c->downed);
	c->parent = a.id;
	c->chain = a.full ? 0 : c->chain + 1;
	*res = (struct checkpoint_result){ .id = a.id, .parent = e.parent, .pause_ns = a.pause_ns,
					   .pages = a.pages, .bytes = e.bytes, .mem_hash = a.hash,
					   .full = a.full, .has_hash = a.want_hash,
					   .ns = kvm__now_ns() - t0, .pause_pages = a.pause_pages,
					   .rounds = a.rounds, .throttle_pct = a.throttle_pct,
					   .disk_blocks = a.denc.blocks,
					   .pause_blocks = a.pause_blocks };
	log_debug("checkpoint %llu of %s: %s, %llu pages, %llu disk blocks (%llu in the pause), "
		  "%llu bytes, pause %.3f ms", (unsigned long long)a.id, c->kvm->name,
		  a.full ? "base" : "increment", (unsigned long long)a.pages,
		  (unsigned long long)a.denc.blocks, (unsigned long long)a.pause_blocks,
		  (unsigned long long)e.bytes, a.pause_ns / 1e6);
	ckpt__attempt_free(&a);
	ckpt__retain(c);
	return 0;
out:
	snprintf(err, errlen, "%s: %s checkpoint %llu: %s", store__dir(c->st), step,
		 (unsigned long long)a.id, km_strerror(r));
out_noerr:
	*res = (struct checkpoint_result){ .id = a.id, .parent = a.full ? 0 : c->parent,
					   .pause_ns = a.pause_ns, .pages = a.pages,
					   .full = a.full, .ns = kvm__now_ns() - t0,
					   .pause_pages = a.pause_pages, .rounds = a.rounds,
					   .throttle_pct = a.throttle_pct };
	ckpt__attempt_free(&a);
	log_error("checkpoint of %s failed: %s (its pages are owed to the next one)",
		  c->kvm->name, err);
	return r;
}

/*
 * One outcome as a CHECKPOINT event on the VM's control socket (to the
 * clients that enabled events; docs/control.md lists the fields). trigger:
 * periodic, requested or snapshot. owed: the pages a failed checkpoint of
 * the VM's own line left to the next one; negative for a live snapshot,
 * which owes nothing (its line ends with it).
 */
static void ckpt__event(struct kvm *kvm, const char *dir, const char *trigger, int r,
			const struct checkpoint_result *res, const char *err, int64_t owed)
{
	char hex[32];
	json_t *d;

	d = json_pack("{s:I, s:s, s:s, s:I, s:s, s:o*, s:I, s:I, s:I, s:I, s:I, s:i, s:i}",
		      "id", (json_int_t)res->id,
		      "status", r ? "failed" : "completed",
		      "kind", res->full ? "base" : "increment",
		      "parent", (json_int_t)res->parent,
		      "trigger", trigger,
		      "dir", qmp_string(dir),
		      "pages", (json_int_t)res->pages,
		      "bytes", (json_int_t)res->bytes,
		      "pause-us", (json_int_t)(res->pause_ns / 1000),
		      "duration-us", (json_int_t)(res->ns / 1000),
		      "pause-pages", (json_int_t)res->pause_pages,
		      "rounds", (int)res->rounds,
		      "throttle-percentage", (int)res->throttle_pct);
	if (d && r) {
		json_object_set_new(d, "error", qmp_string(err[0] ? err : km_strerror(r)));
		if (owed >= 0)
			json_object_set_new(d, "owed-pages", json_integer(owed));
	}
	if (d && !r)
		checkpoint__disk_json(kvm, d, res);
	if (d && !r && res->has_hash) {
		snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)res->mem_hash);
		json_object_set_new(d, "memory-hash", json_string(hex));
	}
	if (!d) {
		log_warn("checkpoints of %s: no memory for the CHECKPOINT event", kvm->name);
		return;
	}
	control__event(kvm, "CHECKPOINT", d);
}

/* The outcome of one of the VM's checkpoints in its stats; under c->lock. */
static void ckpt__account(struct ckpt *c, int r, const struct checkpoint_result *res,
			  const char *err)
{
	if (r != 0) {
		c->stats.failed++;
		c->stats.owed_pages = bitmap_count(&c->line.owed);
		snprintf(c->stats.last_error, sizeof(c->stats.last_error), "%s", err);
		return;
	}
	c->stats.taken++;
	c->stats.last_id = res->id;
	c->stats.last_pause_ns = res->pause_ns;
	if (res->pause_ns > c->stats.max_pause_ns)
		c->stats.max_pause_ns = res->pause_ns;
	c->stats.last_pages = res->pages;
	c->stats.last_bytes = res->bytes;
	c->stats.last_ns = res->ns;
	c->stats.owed_pages = 0;
}

/* Opens (creating) the store of dir and subscribes; undone by ckpt__line_close. */
static int ckpt__line_open(struct ckpt_line *l, struct kvm *kvm, const char *dir, char *err,
			   size_t errlen)
{
	uint64_t pages = memory__nr_pages(&kvm->mem), blocks;
	int r;

	l->kvm = kvm;
	l->sub = -1;
	l->dsub = -1;
	if ((r = store__open(dir, true, &l->st, err, errlen)) != 0)
		return r;
	if ((r = bitmap_init(&l->owed, pages)) != 0 || (r = bitmap_init(&l->todo, pages)) != 0 ||
	    (r = bitmap_init(&l->got, pages)) != 0) {
		snprintf(err, errlen, "out of memory");
		return r;
	}
	/* Its first read is every page: the first checkpoint is a base anyway. */
	if ((l->sub = dirty__subscribe(&kvm->dirty, "checkpoint", true)) < 0) {
		r = l->sub;
		snprintf(err, errlen, "dirty tracking: %s", km_strerror(r));
		return r;
	}
	/* A writable disk goes into the checkpoints too; a read-only one cannot change. */
	if (!kvm->blk || virtio_blk__ro(kvm->blk))
		return 0;
	blocks = virtio_blk__nr_blocks(kvm->blk);
	if ((r = bitmap_init(&l->downed, blocks)) != 0 || (r = bitmap_init(&l->dtodo, blocks)) != 0 ||
	    (r = bitmap_init(&l->dgot, blocks)) != 0) {
		snprintf(err, errlen, "out of memory");
		return r;
	}
	if ((l->dsub = virtio_blk__track(kvm->blk)) < 0) {
		r = l->dsub;
		snprintf(err, errlen, "disk %s: dirty-block tracking: %s",
			 virtio_blk__path(kvm->blk), km_strerror(r));
		return r;
	}
	return 0;
}

static void ckpt__line_close(struct ckpt_line *l)
{
	if (l->sub >= 0)
		dirty__unsubscribe(&l->kvm->dirty, l->sub);
	l->sub = -1;
	if (l->dsub >= 0)
		virtio_blk__untrack(l->kvm->blk, l->dsub);
	l->dsub = -1;
	bitmap_free(&l->downed);
	bitmap_free(&l->dtodo);
	bitmap_free(&l->dgot);
	bitmap_free(&l->owed);
	bitmap_free(&l->todo);
	bitmap_free(&l->got);
	store__close(l->st);
	l->st = NULL;
}

static void *ckpt__thread(void *arg)
{
	struct ckpt *c = arg;
	struct checkpoint_result res;
	char err[256];
	uint64_t seq, now;
	bool full, hash, periodic, requested;
	int r;

	pthread_setname_np(pthread_self(), "checkpoint");
	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		now = kvm__now_ns();
		periodic = c->due_ns && now >= c->due_ns;
		if (c->req_seq == c->done_seq && !periodic) {
			if (c->due_ns) {
				struct timespec ts;
				uint64_t wall = (uint64_t)kvm__wall_ns() + (c->due_ns - now);

				/* The condvar waits on CLOCK_REALTIME; a late wake-up only checks again. */
				ts.tv_sec = (time_t)(wall / 1000000000ULL);
				ts.tv_nsec = (long)(wall % 1000000000ULL);
				pthread_cond_timedwait(&c->cond, &c->lock, &ts);
			} else {
				pthread_cond_wait(&c->cond, &c->lock);
			}
			continue;
		}
		/* Requests made from now on wait for the next checkpoint. */
		seq = c->running_seq = c->req_seq;
		/* One that answers a request is "requested", even if the period was due too. */
		requested = seq != c->done_seq;
		full = c->req_full;
		hash = c->req_hash;
		c->req_full = c->req_hash = false;
		if (c->due_ns)
			c->due_ns = now + c->p.every_ms * 1000000ULL;
		pthread_mutex_unlock(&c->lock);

		/* A VM that stopped or left has nothing more to save. */
		if (c->kvm->state == KVM_STATE_STOPPED) {
			r = KM_ERR_STATE;
			snprintf(err, sizeof(err), "the VM has stopped");
			res = (struct checkpoint_result){ .full = ckpt__base_due(&c->line, full) };
			res.parent = res.full ? 0 : c->line.parent;
		} else {
			err[0] = '\0';
			r = ckpt__take(&c->line, full, hash, &res, err, sizeof(err));
		}
		/*
		 * Before the requester is answered, so that a client of both sees
		 * the event first. owed is this thread's alone: read unlocked.
		 */
		ckpt__event(c->kvm, c->p.dir, requested ? "requested" : "periodic", r, &res, err,
			    r ? (int64_t)bitmap_count(&c->line.owed) : 0);

		pthread_mutex_lock(&c->lock);
		ckpt__account(c, r, &res, err);
		if (seq != c->done_seq) {
			c->done_seq = seq;
			c->req_r = r;
			if (r == 0)
				c->req_res = res;
			snprintf(c->req_err, sizeof(c->req_err), "%s", err);
			pthread_cond_broadcast(&c->cond);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int checkpoint__setup(struct kvm *kvm, const struct checkpoint_params *p, char *err,
		      size_t errlen)
{
	struct ckpt *c = &ckpt__g;
	int r;

	if (c->kvm)
		return KM_ERR_STATE;
	c->kvm = kvm;
	c->p = *p;
	if (!c->p.chain_max)
		c->p.chain_max = CKPT_DEFAULT_CHAIN;
	c->line.compress = c->p.compress;
	c->line.chain_max = c->p.chain_max;
	c->line.keep = c->p.keep;
	if ((r = ckpt__line_open(&c->line, kvm, p->dir, err, errlen)) != 0)
		goto fail;
	c->stats.every_ms = p->every_ms;
	c->stats.periodic = p->every_ms != 0;
	c->due_ns = p->every_ms ? kvm__now_ns() + p->every_ms * 1000000ULL : 0;
	if ((r = -pthread_create(&c->thread, NULL, ckpt__thread, c)) != 0) {
		snprintf(err, errlen, "thread: %s", km_strerror(r));
		goto fail;
	}
	c->started = true;
	return 0;
fail:
	ckpt__line_close(&c->line);
	c->kvm = NULL;
	return r;
}

int checkpoint__save_to(struct kvm *kvm, const char *dir, bool compress,
			struct checkpoint_result *res, char *err, size_t errlen)
{
	struct ckpt_line l = { .compress = compress, .chain_max = 1, .dsub = -1 };
	int r;

	if ((r = ckpt__line_open(&l, kvm, dir, err, errlen)) == 0)
		r = ckpt__take(&l, true, false, res, err, errlen);
	else
		*res = (struct checkpoint_result){ .full = true };
	ckpt__line_close(&l);
	ckpt__event(kvm, dir, "snapshot", r, res, err, -1);
	return r;
}

int checkpoint__now(struct kvm *kvm, bool full, bool hash, struct checkpoint_result *res,
		    char *err, size_t errlen)
{
	struct ckpt *c = &ckpt__g;
	uint64_t seq;
	int r;

	if (c->kvm != kvm || !c->started) {
		snprintf(err, errlen, "this VM has no checkpoint directory (kvm-run --checkpoint-dir)");
		return KM_ERR_STATE;
	}
	pthread_mutex_lock(&c->lock);
	/*
	 * Requests that come together are served by one checkpoint, but not
	 * by one already under way: it may have captured before this call.
	 */
	if (c->req_seq == c->done_seq || c->req_seq == c->running_seq)
		c->req_seq++;
	c->req_full |= full;
	c->req_hash |= hash;
	seq = c->req_seq;
	pthread_cond_broadcast(&c->cond);
	while (c->done_seq < seq && !c->stop)
		pthread_cond_wait(&c->cond, &c->lock);
	if (c->done_seq < seq) {
		r = KM_ERR_CANCELED;
		snprintf(err, errlen, "the VM is stopping");
	} else {
		r = c->req_r;
		*res = c->req_res;
		snprintf(err, errlen, "%s", c->req_err);
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

int checkpoint__set_period(struct kvm *kvm, uint64_t every_ms)
{
	struct ckpt *c = &ckpt__g;

	if (c->kvm != kvm || !c->started)
		return KM_ERR_STATE;
	pthread_mutex_lock(&c->lock);
	c->p.every_ms = every_ms;
	c->stats.every_ms = every_ms;
	c->stats.periodic = every_ms != 0;
	c->due_ns = every_ms ? kvm__now_ns() + every_ms * 1000000ULL : 0;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int checkpoint__get_stats(struct kvm *kvm, struct checkpoint_stats *out)
{
	struct ckpt *c = &ckpt__g;

	if (c->kvm != kvm)
		return KM_ERR_STATE;
	pthread_mutex_lock(&c->lock);
	*out = c->stats;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

void checkpoint__shutdown(struct kvm *kvm)
{
	struct ckpt *c = &ckpt__g;

	if (c->kvm != kvm || !c->started)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	c->started = false;
	ckpt__line_close(&c->line);
	c->kvm = NULL;
}
