/*
 * The checkpoint store's chains and retention plans: pure functions of a
 * listing (store.h).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "err.h"
#include "snapshot/store.h"
#include "snapshot/store-int.h"

/* ---- chains and retention (pure) ------------------------------------------ */

int store__chain(const struct store_entry *e, size_t n, uint64_t id, uint64_t *ids, size_t *len,
		 char *err, size_t errlen)
{
	const struct store_entry *cur, *par;
	size_t cap = *len, k = 0, i;
	uint64_t t;

	*len = 0;
	if (!store__sorted(e, n))
		return store__fail(err, errlen, KM_ERR_INVALID,
				   "checkpoint list not in ascending id order");
	if ((cur = store__find(e, n, id)) == NULL)
		return store__fail(err, errlen, -ENOENT, "checkpoint %" PRIu64 " is not listed",
				   id);
	for (;;) {
		/* Positions fall by one per step, so a consistent chain cannot loop; n bounds it anyway. */
		if (k == n)
			return store__fail(err, errlen, KM_ERR_CORRUPT,
					   "checkpoint %" PRIu64 ": its chain loops", id);
		if (k == cap)
			return store__fail(err, errlen, KM_ERR_TOO_LARGE,
					   "checkpoint %" PRIu64 ": its chain is longer than %zu",
					   id, cap);
		ids[k++] = cur->id;
		if (cur->kind == STORE_FULL) {
			if (cur->chain_pos != 0 || cur->parent != 0)
				return store__fail(err, errlen, KM_ERR_CORRUPT,
						   "checkpoint %" PRIu64 ": a base with a parent "
						   "or a chain position", cur->id);
			break;
		}
		if (cur->kind != STORE_INCR)
			return store__fail(err, errlen, KM_ERR_CORRUPT,
					   "checkpoint %" PRIu64 ": unknown kind %" PRIu64,
					   cur->id, cur->kind);
		if ((par = store__find(e, n, cur->parent)) == NULL)
			return store__fail(err, errlen, KM_ERR_CORRUPT,
					   "checkpoint %" PRIu64 ": its parent %" PRIu64
					   " is missing", cur->id, cur->parent);
		if (cur->chain_pos != par->chain_pos + 1)
			return store__fail(err, errlen, KM_ERR_CORRUPT,
					   "checkpoint %" PRIu64 ": chain position %" PRIu64
					   ", its parent %" PRIu64 "'s is %" PRIu64, cur->id,
					   cur->chain_pos, par->id, par->chain_pos);
		cur = par;
	}
	for (i = 0; i < k / 2; i++) {
		t = ids[i];
		ids[i] = ids[k - 1 - i];
		ids[k - 1 - i] = t;
	}
	*len = k;
	return 0;
}

struct store_age {
	uint64_t time_ns, id;
	size_t idx;
};

/* Newest first: by time, then by id. */
static int store__cmp_age(const void *a, const void *b)
{
	const struct store_age *x = a, *y = b;

	if (x->time_ns != y->time_ns)
		return x->time_ns > y->time_ns ? -1 : 1;
	return x->id > y->id ? -1 : x->id < y->id;
}

int store__prune_plan(const struct store_entry *e, size_t n, unsigned int keep, uint64_t *del,
		      size_t *ndel)
{
	struct store_age *age = NULL;
	const struct store_entry *par;
	bool *kept = NULL;
	size_t i, idx;
	int r = -ENOMEM;

	*ndel = 0;
	if (!store__sorted(e, n))
		return KM_ERR_INVALID;
	if (n == 0)
		return 0;
	if ((age = malloc(n * sizeof(*age))) == NULL || (kept = calloc(n, sizeof(*kept))) == NULL)
		goto out;
	for (i = 0; i < n; i++)
		age[i] = (struct store_age){ e[i].time_ns, e[i].id, i };
	qsort(age, n, sizeof(*age), store__cmp_age);
	for (i = 0; i < n && i < keep; i++) {
		/*
		 * Up the chain until a base or an entry kept already (whose
		 * ancestors are then kept too). Any parent is followed, whatever
		 * the kind says: keeping too much is the safe mistake.
		 */
		for (idx = age[i].idx; !kept[idx];) {
			kept[idx] = true;
			if (e[idx].parent == 0 || (par = store__find(e, n, e[idx].parent)) == NULL)
				break;
			idx = (size_t)(par - e);
		}
	}
	for (i = 0; i < n; i++)
		if (!kept[i])
			del[(*ndel)++] = e[i].id;
	r = 0;
out:
	free(kept);
	free(age);
	return r;
}
