/*
 * The checkpoint store's removal and garbage collection: delist, then
 * unlink, then fsync(DIR); gc takes what no live writer holds. See store.c
 * for the timelines, store.h for the contract.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "snapshot/store.h"
#include "snapshot/store-int.h"

/* ---- remove, gc ----------------------------------------------------------- */

struct store_remove_ctx {
	const uint64_t *ids;	/* sorted, no repeats */
	size_t n;
};

static int store__apply_remove(const struct store *st, struct store_manifest *m, void *arg,
			       char *err, size_t errlen)
{
	struct store_remove_ctx *c = arg;
	const struct store_entry *x;
	size_t i;

	for (i = 0; i < c->n; i++)
		if (store__find(m->e, m->n, c->ids[i]) == NULL)
			return store__fail(err, errlen, -ENOENT,
					   "%s: checkpoint %" PRIu64 " is not listed", st->dir,
					   c->ids[i]);
	for (i = 0; i < m->n; i++) {
		x = &m->e[i];
		if (x->kind == STORE_INCR && !store__in(c->ids, c->n, x->id) &&
		    store__in(c->ids, c->n, x->parent))
			return store__fail(err, errlen, KM_ERR_STATE,
					   "%s: checkpoint %" PRIu64 " depends on %" PRIu64
					   ": remove it too, or compact its chain first", st->dir,
					   x->id, x->parent);
	}
	store__m_drop(m, c->ids, c->n);
	return 0;
}

int store__remove(struct store *st, const uint64_t *ids, size_t n, char *err, size_t errlen)
{
	struct store_remove_ctx c;
	uint64_t *sorted;
	bool renamed;
	int r, r2;

	if (n == 0)
		return 0;
	if ((r = store__sorted_ids(ids, n, &sorted, &c.n)) != 0)
		return r;
	c.ids = sorted;
	/*
	 * If the manifest was renamed but DIR not synced, the files stay: after
	 * a power loss the old manifest, listing them, may be what remains.
	 * store__gc() removes them once the new one is known to hold.
	 */
	if ((r = store__transact(st, store__apply_remove, &c, &renamed, err, errlen)) != 0)
		goto out;
	if (store__unlink_ids(st, c.ids, c.n, &r, err, errlen) > 0 &&
	    (r2 = store__sync_dir(st)) != 0 && r == 0)
		r = store__fail(err, errlen, r2, "%s: syncing it after removing checkpoints "
				"failed: %s", st->dir, km_strerror(r2));
out:
	free(sorted);
	return r;
}

struct store_gc_ctx {
	const struct store_manifest *m;
	char (*names)[32];	/* what to remove */
	size_t n, cap;
	uint64_t max_id;
	bool stale_tmp;		/* a manifest.tmp is there */
};

/*
 * Whether a ckpt or temp file has a live writer: its lock is held. Taking
 * a read lock on a fresh open answers it; the writer's F_WRLCK refuses it.
 * Anything that is not a regular file of ours is left alone.
 */
static bool store__abandoned(const struct store *st, const char *name)
{
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
	bool free_ = false;
	int fd;

	fd = openat(st->dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (store__check_fd(st, name, fd, NULL, 0) == 0)
		free_ = fcntl(fd, F_OFD_SETLK, &fl) == 0;
	close(fd);
	return free_;
}

static int store__gc_one(const struct store *st, const char *name, enum store_name kind,
			 uint64_t id, void *arg, char *err, size_t errlen)
{
	struct store_gc_ctx *c = arg;
	char (*nn)[32];
	size_t cap;

	switch (kind) {
	case STORE_NAME_MANIFEST_TMP:
		c->stale_tmp = true;
		return 0;
	case STORE_NAME_CKPT:
		if (store__find(c->m->e, c->m->n, id) != NULL)
			return 0;
		/* fallthrough */
	case STORE_NAME_TMP:
		if (strlen(name) >= sizeof(*c->names) || !store__abandoned(st, name))
			return 0;
		break;
	default:
		return 0;
	}
	if (c->n == c->cap) {
		cap = c->cap ? c->cap * 2 : 16;
		if ((nn = realloc(c->names, cap * sizeof(*nn))) == NULL)
			return -ENOMEM;
		c->names = nn;
		c->cap = cap;
	}
	snprintf(c->names[c->n++], sizeof(*c->names), "%s", name);
	if (id > c->max_id)
		c->max_id = id;
	return 0;
}

int store__gc(struct store *st, unsigned int *removed, char *err, size_t errlen)
{
	struct store_manifest m = { 0 };
	struct store_gc_ctx c = { .m = &m };
	unsigned int gone = 0;
	bool renamed;
	size_t i;
	int lockfd, r;

	if (removed)
		*removed = 0;
	/*
	 * All under DIR/lock: no transaction is half-way (so manifest.tmp is
	 * dead), and no begin is between creating a temp file and locking it.
	 * A damaged manifest stops gc: it cannot tell what is listed.
	 */
	if ((r = store__lock(st, &lockfd, err, errlen)) != 0)
		return r;
	if ((r = store__read_manifest(st, &m, err, errlen)) != 0 ||
	    (r = store__scan(st, store__gc_one, &c, err, errlen)) != 0)
		goto out;
	if (c.stale_tmp) {
		if (unlinkat(st->dfd, STORE_MANIFEST_TMP, 0) == 0)
			gone++;
		else if (errno != ENOENT) {
			r = store__fail(err, errlen, km_errno(), "%s/%s: cannot remove it: %s",
					st->dir, STORE_MANIFEST_TMP, km_strerror(km_errno()));
			goto out;
		}
	}
	/* The ids of the files about to go stay used: the manifest says so first. */
	if (c.max_id >= m.next_id) {
		m.next_id = c.max_id + 1;
		if ((r = store__write_manifest(st, &m, &renamed, err, errlen)) != 0)
			goto out;
	}
	for (i = 0; i < c.n; i++) {
		if (unlinkat(st->dfd, c.names[i], 0) == 0)
			gone++;
		else if (errno != ENOENT && r == 0)
			r = store__fail(err, errlen, km_errno(), "%s/%s: cannot remove it: %s",
					st->dir, c.names[i], km_strerror(km_errno()));
	}
	if (gone > 0 && store__sync_dir(st) != 0 && r == 0)
		r = store__fail(err, errlen, km_errno(), "%s: cannot sync it: %s", st->dir,
				km_strerror(km_errno()));
out:
	free(c.names);
	free(m.e);
	store__unlock(lockfd);
	if (removed)
		*removed = gone;
	return r;
}
