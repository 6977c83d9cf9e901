/*
 * The dirty tracker: subscribers, fan-out, logging on/off, VMM writes.
 * The KVM side of each backend is in dirty-kvm.c. See dirty.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "kvm/dirty.h"
#include "kvm/dirty-kvm.h"
#include "kvm/kvm.h"

const char *dirty__backend_name(enum dirty_backend b)
{
	switch (b) {
	case DIRTY_BITMAP: return "bitmap";
	case DIRTY_CLEAR: return "clear";
	case DIRTY_RING: return "ring";
	case DIRTY_DEFAULT: return "default";
	}
	return "unknown";
}

int dirty__parse_backend(const char *s, enum dirty_backend *out)
{
	if (!strcmp(s, "bitmap"))
		*out = DIRTY_BITMAP;
	else if (!strcmp(s, "clear"))
		*out = DIRTY_CLEAR;
	else if (!strcmp(s, "ring"))
		*out = DIRTY_RING;
	else
		return KM_ERR_INVALID;
	return 0;
}

int dirty__init(struct dirty_tracker *t, struct kvm *kvm, enum dirty_backend backend,
		uint32_t ring_bytes)
{
	unsigned int i;
	uint64_t max_slot = 0;
	int r;

	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->kvm = kvm;
	t->backend = backend;
	t->ring_bytes = ring_bytes ? ring_bytes : DIRTY_RING_DEFAULT_BYTES;
	/* Pages are numbered by memory (memory__page_of); a slot's are consecutive. */
	t->nr_pages = memory__nr_pages(&kvm->mem);
	for (i = 0; i < kvm->mem.nr_slots; i++) {
		uint64_t pages = kvm->mem.slots[i].size / KM_PAGE_SIZE;

		t->slot_first[i] = kvm->mem.slots[i].offset / KM_PAGE_SIZE;
		if (pages > max_slot)
			max_slot = pages;
	}
	if ((r = bitmap_init(&t->harvest, t->nr_pages)) != 0)
		return r;
	t->kvm_bitmap = calloc(BITMAP_WORDS(max_slot), sizeof(uint64_t));
	t->ring_fetch = calloc(KM_MAX_VCPUS, sizeof(uint32_t));
	if (!t->kvm_bitmap || !t->ring_fetch)
		return -ENOMEM;
	return dirty_kvm__init(t);
}

int dirty__init_vcpus(struct dirty_tracker *t)
{
	return dirty_kvm__init_vcpus(t);
}

void dirty__destroy(struct dirty_tracker *t)
{
	unsigned int i;

	if (!t || !t->kvm)
		return;
	dirty_kvm__destroy(t);
	for (i = 0; i < DIRTY_MAX_SUBS; i++)
		bitmap_free(&t->subs[i].bits);
	bitmap_free(&t->harvest);
	free(t->kvm_bitmap);
	free(t->ring_fetch);
	t->kvm_bitmap = NULL;
	t->ring_fetch = NULL;
	pthread_mutex_destroy(&t->lock);
	t->kvm = NULL;
}

/* One harvest into every subscriber. Called with t->lock held. */
static int dirty__harvest_locked(struct dirty_tracker *t)
{
	uint64_t start, ns, n;
	unsigned int i;
	int r;

	if (!t->logging)
		return 0;
	start = kvm__now_ns();
	if ((r = dirty_kvm__harvest(t, &t->harvest)) != 0)
		return r;
	n = bitmap_count(&t->harvest);
	for (i = 0; i < DIRTY_MAX_SUBS; i++)
		if (t->subs[i].active && n)
			bitmap_or_at(&t->subs[i].bits, 0, t->harvest.words, t->nr_pages);
	bitmap_clear_all(&t->harvest);
	ns = kvm__now_ns() - start;
	t->stats.harvests++;
	t->stats.pages_harvested += n;
	t->stats.harvest_ns_last = ns;
	t->stats.harvest_ns_total += ns;
	if (ns > t->stats.harvest_ns_max)
		t->stats.harvest_ns_max = ns;
	return 0;
}

int dirty__harvest(struct dirty_tracker *t)
{
	int r;

	pthread_mutex_lock(&t->lock);
	r = dirty__harvest_locked(t);
	pthread_mutex_unlock(&t->lock);
	return r;
}

static int dirty__enable_locked(struct dirty_tracker *t)
{
	uint64_t start = kvm__now_ns();
	int r;

	if (t->logging)
		return 0;
	if ((r = dirty_kvm__enable(t)) != 0)
		return r;
	t->logging = true;
	t->stats.enable_ns_last = kvm__now_ns() - start;
	log_debug("dirty logging on (%s)", dirty__backend_name(t->backend));
	return 0;
}

static int dirty__disable_locked(struct dirty_tracker *t)
{
	uint64_t start = kvm__now_ns();
	unsigned int i;
	int r;

	if (!t->logging)
		return 0;
	/* What KVM logged so far goes to the subscribers before the log is dropped. */
	if ((r = dirty__harvest_locked(t)) != 0)
		return r;
	if ((r = dirty_kvm__disable(t)) != 0)
		return r;
	t->logging = false;
	/* Writes from now on are not seen: remaining subscribers must resync. */
	for (i = 0; i < DIRTY_MAX_SUBS; i++)
		if (t->subs[i].active)
			t->subs[i].gap = true;
	t->stats.disable_ns_last = kvm__now_ns() - start;
	log_debug("dirty logging off");
	return 0;
}

/* Whether logging should be on now, by mode and subscribers. */
static bool dirty__wanted(struct dirty_tracker *t)
{
	unsigned int i;

	if (t->mode != DIRTY_LOG_AUTO)
		return t->mode == DIRTY_LOG_ON;
	for (i = 0; i < DIRTY_MAX_SUBS; i++)
		if (t->subs[i].active)
			return true;
	return false;
}

/* Brings KVM's logging in line with dirty__wanted. */
static int dirty__apply_locked(struct dirty_tracker *t)
{
	return dirty__wanted(t) ? dirty__enable_locked(t) : dirty__disable_locked(t);
}

int dirty__subscribe(struct dirty_tracker *t, const char *name, bool all_dirty)
{
	struct dirty_sub *s = NULL;
	unsigned int i;
	int r;

	pthread_mutex_lock(&t->lock);
	for (i = 0; i < DIRTY_MAX_SUBS; i++) {
		if (!t->subs[i].active) {
			s = &t->subs[i];
			break;
		}
	}
	if (!s) {
		r = KM_ERR_NO_SPACE;
		goto out;
	}
	if (!s->bits.words && (r = bitmap_init(&s->bits, t->nr_pages)) != 0)
		goto out;
	/*
	 * Logging on first, then a harvest whose pages this subscriber does
	 * not get: a "from now" subscriber must not see older pages.
	 */
	if (t->mode != DIRTY_LOG_OFF && (r = dirty__enable_locked(t)) != 0)
		goto out;
	if ((r = dirty__harvest_locked(t)) != 0)
		goto out;
	bitmap_clear_all(&s->bits);
	if (all_dirty)
		bitmap_fill(&s->bits);
	/* With logging held off, nothing it would read later can be trusted. */
	s->gap = t->mode == DIRTY_LOG_OFF;
	s->active = true;
	snprintf(s->name, sizeof(s->name), "%s", name ? name : "");
	r = (int)i;
out:
	pthread_mutex_unlock(&t->lock);
	return r;
}

void dirty__unsubscribe(struct dirty_tracker *t, int sub)
{
	if (sub < 0 || sub >= DIRTY_MAX_SUBS)
		return;
	pthread_mutex_lock(&t->lock);
	t->subs[sub].active = false;
	dirty__apply_locked(t);
	pthread_mutex_unlock(&t->lock);
}

int64_t dirty__read(struct dirty_tracker *t, int sub, struct bitmap *out)
{
	struct dirty_sub *s;
	int64_t n;
	int r;

	if (sub < 0 || sub >= DIRTY_MAX_SUBS || out->nbits != t->nr_pages)
		return KM_ERR_INVALID;
	pthread_mutex_lock(&t->lock);
	s = &t->subs[sub];
	if (!s->active) {
		n = KM_ERR_STATE;
		goto out;
	}
	if ((r = dirty__harvest_locked(t)) != 0) {
		n = r;
		goto out;
	}
	if (s->gap) {
		bitmap_fill(out);
		s->gap = false;
	} else {
		memcpy(out->words, s->bits.words, BITMAP_WORDS(t->nr_pages) * sizeof(uint64_t));
	}
	bitmap_clear_all(&s->bits);
	n = (int64_t)bitmap_count(out);
out:
	pthread_mutex_unlock(&t->lock);
	return n;
}

int dirty__set_mode(struct dirty_tracker *t, enum dirty_log_mode mode)
{
	int r;

	pthread_mutex_lock(&t->lock);
	t->mode = mode;
	r = dirty__apply_locked(t);
	pthread_mutex_unlock(&t->lock);
	return r;
}

const char *dirty__mode_name(enum dirty_log_mode m)
{
	switch (m) {
	case DIRTY_LOG_AUTO: return "auto";
	case DIRTY_LOG_ON: return "on";
	case DIRTY_LOG_OFF: return "off";
	}
	return "unknown";
}

void dirty__mark(struct dirty_tracker *t, uint64_t gpa, uint64_t len)
{
	uint64_t first, last, n;
	unsigned int i;

	if (!t->kvm || len == 0)
		return;
	first = memory__page_of(&t->kvm->mem, gpa);
	last = memory__page_of(&t->kvm->mem, gpa + len - 1);
	if (first == UINT64_MAX || last == UINT64_MAX || last < first)
		return;
	n = last - first + 1;
	pthread_mutex_lock(&t->lock);
	if (t->logging) {
		for (i = 0; i < DIRTY_MAX_SUBS; i++)
			if (t->subs[i].active)
				bitmap_set_range(&t->subs[i].bits, first, n);
		t->stats.vmm_pages += n;
	}
	pthread_mutex_unlock(&t->lock);
}

int dirty__ring_full(struct dirty_tracker *t, struct kvm_cpu *cpu)
{
	int r;

	pthread_mutex_lock(&t->lock);
	t->stats.ring_full_exits++;
	r = dirty__harvest_locked(t);
	pthread_mutex_unlock(&t->lock);
	return r;
}

void dirty__ring_counts(struct dirty_tracker *t, uint32_t *out)
{
	unsigned int i;

	pthread_mutex_lock(&t->lock);
	for (i = 0; i < KM_MAX_VCPUS; i++)
		out[i] = t->ring_fetch ? t->ring_fetch[i] : 0;
	pthread_mutex_unlock(&t->lock);
}

void dirty__get_stats(struct dirty_tracker *t, struct dirty_stats *out, bool *logging)
{
	pthread_mutex_lock(&t->lock);
	*out = t->stats;
	*logging = t->logging;
	pthread_mutex_unlock(&t->lock);
}
