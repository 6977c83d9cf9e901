/*
 * The checkpoint store's manifest: its records, reading it (every damage
 * named), writing it (temp, fsync, rename) and one transaction under
 * DIR/lock. See store.c for the timelines, store.h for the contract.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "record.h"
#include "snapshot/store.h"
#include "snapshot/store-int.h"

/* ---- the manifest --------------------------------------------------------- */

static int store__cmp_entry(const void *key, const void *elem)
{
	uint64_t id = *(const uint64_t *)key, eid = ((const struct store_entry *)elem)->id;

	return id < eid ? -1 : id > eid;
}

/* The entry of id in e[] (ascending ids), or NULL. */
struct store_entry *store__find(const struct store_entry *e, size_t n, uint64_t id)
{
	if (n == 0)
		return NULL;
	return bsearch(&id, e, n, sizeof(*e), store__cmp_entry);
}

bool store__sorted(const struct store_entry *e, size_t n)
{
	size_t i;

	for (i = 1; i < n; i++)
		if (e[i - 1].id >= e[i].id)
			return false;
	return true;
}

static int store__m_reserve(struct store_manifest *m, size_t want)
{
	struct store_entry *ne;
	size_t cap;

	if (want <= m->cap)
		return 0;
	cap = m->cap ? m->cap : 16;
	while (cap < want)
		cap *= 2;
	if ((ne = realloc(m->e, cap * sizeof(*ne))) == NULL)
		return -ENOMEM;
	m->e = ne;
	m->cap = cap;
	return 0;
}

/* Inserts e at its place by id (the end, but for commits that overtook each other). */
int store__m_insert(struct store_manifest *m, const struct store_entry *e)
{
	size_t i;
	int r;

	if ((r = store__m_reserve(m, m->n + 1)) != 0)
		return r;
	for (i = m->n; i > 0 && m->e[i - 1].id > e->id; i--)
		m->e[i] = m->e[i - 1];
	m->e[i] = *e;
	m->n++;
	if (m->next_id <= e->id)
		m->next_id = e->id + 1;
	return 0;
}

/* One STORE_REC_ENTRY's fields into *e: 0, or a static reason it is damaged. */
static const char *store__parse_entry(const uint8_t *p, uint32_t len, struct store_entry *e)
{
	static const char *const missing[] = {
		NULL, "no id", "no parent", "no kind", "no time", "no page count", "no size",
		"no pause time", "no hash", "no chain position",
	};
	uint64_t v[10] = { 0 };
	const uint8_t *d;
	uint32_t tag, dlen, seen = 0, t;
	struct buf *f;
	int r;

	if (len == 0)
		return missing[STORE_E_ID];
	if ((f = buf_view(p, len)) == NULL)
		return "out of memory";
	while ((r = rec_get_field(f, &tag, &d, &dlen)) == 0) {
		/* Unknown tags are a newer minor version's: skipped (docs/format.md s.3). */
		if (tag < STORE_E_ID || tag > STORE_E_CHAIN_POS)
			continue;
		if (rec_field_u64(d, dlen, &v[tag]) != 0) {
			buf_free(f);
			return "a field is not a u64";
		}
		seen |= 1u << tag;
	}
	buf_free(f);
	if (r != KM_ERR_END)
		return "a field runs past the record";
	for (t = STORE_E_ID; t <= STORE_E_CHAIN_POS; t++)
		if (!(seen & (1u << t)))
			return missing[t];
	e->id = v[STORE_E_ID];
	e->parent = v[STORE_E_PARENT];
	e->kind = v[STORE_E_KIND];
	e->time_ns = v[STORE_E_TIME_NS];
	e->pages = v[STORE_E_PAGES];
	e->bytes = v[STORE_E_BYTES];
	e->pause_ns = v[STORE_E_PAUSE_NS];
	e->hash = v[STORE_E_HASH];
	e->chain_pos = v[STORE_E_CHAIN_POS];
	return NULL;
}

/* What is wrong with e after prev (the entry before it, or NULL): NULL if nothing. */
static const char *store__entry_insane(const struct store_entry *e, const struct store_entry *prev)
{
	if (e->id == 0 || e->id > STORE_ID_MAX)
		return "an id out of range";
	if (prev && e->id <= prev->id)
		return "ids out of order";
	if (e->kind == STORE_FULL && (e->parent != 0 || e->chain_pos != 0))
		return "a base with a parent";
	if (e->kind == STORE_INCR &&
	    (e->parent == 0 || e->parent > STORE_ID_MAX || e->parent == e->id || e->chain_pos == 0))
		return "an increment without a parent";
	if (e->kind != STORE_FULL && e->kind != STORE_INCR)
		return "an unknown kind";
	return NULL;
}

/* The REC_HEADER of the manifest: 0, or KM_ERR_BAD_MAGIC / KM_ERR_VERSION / KM_ERR_CORRUPT. */
static int store__parse_header(const struct store *st, uint32_t type, const uint8_t *p,
			       uint32_t len, uint64_t *next_id, char *err, size_t errlen)
{
	uint64_t major;
	int r;

	if (type != REC_HEADER || len < 8 || memcmp(p, STORE_MAGIC, 8) != 0)
		return store__fail(err, errlen, KM_ERR_BAD_MAGIC,
				   "%s/%s: not a checkpoint manifest (bad magic)", st->dir,
				   STORE_MANIFEST);
	r = rec_find_u64(p + 8, len - 8, STORE_HDR_MAJOR, &major);
	if (r == 0 && major > STORE_VERSION_MAJOR)
		return store__fail(err, errlen, KM_ERR_VERSION,
				   "%s/%s: written by a newer kvm-migrate (format %" PRIu64 ")",
				   st->dir, STORE_MANIFEST, major);
	if (r != 0 || major == 0)
		return store__fail(err, errlen, KM_ERR_CORRUPT,
				   "%s/%s: damaged at record 0 (the header): no valid version",
				   st->dir, STORE_MANIFEST);
	r = rec_find_u64(p + 8, len - 8, STORE_HDR_NEXT_ID, next_id);
	if (r == KM_ERR_END)
		*next_id = 1;
	else if (r != 0)
		return store__fail(err, errlen, KM_ERR_CORRUPT,
				   "%s/%s: damaged at record 0 (the header): a malformed field",
				   st->dir, STORE_MANIFEST);
	return 0;
}

/* Reads the whole manifest (at most STORE_MANIFEST_MAX bytes) into a new buffer. */
static int store__slurp(const struct store *st, struct buf **out, char *err, size_t errlen)
{
	struct buf *b = NULL;
	struct stat sb;
	uint8_t *dst;
	size_t got = 0, size;
	ssize_t n;
	int fd, r;

	*out = NULL;
	/* O_NONBLOCK: a FIFO planted under the name must not hang us (it is refused below). */
	fd = openat(st->dfd, STORE_MANIFEST, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		r = km_errno();
		return store__fail(err, errlen, r == -ELOOP ? -ELOOP : r, "%s/%s: %s", st->dir,
				   STORE_MANIFEST, r == -ELOOP ? "a symlink: refused" :
				   km_strerror(r));
	}
	if (fstat(fd, &sb) < 0) {
		r = store__fail(err, errlen, km_errno(), "%s/%s: %s", st->dir, STORE_MANIFEST,
				km_strerror(km_errno()));
		goto out;
	}
	if ((r = store__check_stat(st, STORE_MANIFEST, &sb, err, errlen)) != 0)
		goto out;
	if ((uint64_t)sb.st_size > STORE_MANIFEST_MAX) {
		r = store__fail(err, errlen, KM_ERR_TOO_LARGE,
				"%s/%s: %jd bytes, more than the %u MiB a manifest may have",
				st->dir, STORE_MANIFEST, (intmax_t)sb.st_size,
				STORE_MANIFEST_MAX >> 20);
		goto out;
	}
	size = (size_t)sb.st_size;
	if ((b = buf_new(size > 0 ? size : 1)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	buf_set_bulk(b);	/* checkpoint metadata, nothing secret: no scrubbing */
	if (size > 0 && (r = buf_reserve(b, size, &dst)) != 0)
		goto out;
	while (got < size) {
		n = read(fd, dst + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = store__fail(err, errlen, km_errno(), "%s/%s: %s", st->dir,
					STORE_MANIFEST, km_strerror(km_errno()));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	/* A file cut while we read it (by whom?) parses as truncated: damage, said as such. */
	if (got < size && (r = buf_unreserve(b, size - got)) != 0)
		goto out;
	*out = b;
	b = NULL;
	r = 0;
out:
	buf_free(b);
	close(fd);
	return r;
}

/* A failed rec_get() at record idx, as a sentence. */
static int store__damaged(const struct store *st, int r, size_t idx, char *err, size_t errlen)
{
	const char *why;

	switch (r) {
	case KM_ERR_TRUNCATED:
		why = "truncated";
		break;
	case KM_ERR_TOO_LARGE:
		why = "a length past its bound";
		break;
	case KM_ERR_CORRUPT:
		why = "checksum mismatch";
		break;
	default:
		return store__fail(err, errlen, r, "%s/%s: %s", st->dir, STORE_MANIFEST,
				   km_strerror(r));
	}
	return store__fail(err, errlen, KM_ERR_CORRUPT, "%s/%s: damaged at record %zu: %s",
			   st->dir, STORE_MANIFEST, idx, why);
}

/*
 * Reads and checks the manifest into *m (zeroed by the caller; m->e is
 * the caller's to free, even on error). Every record is bounded by
 * STORE_REC_MAX, every entry checked before it is kept.
 */
int store__read_manifest(const struct store *st, struct store_manifest *m, char *err,
			 size_t errlen)
{
	const struct store_entry *prev = NULL;
	struct store_entry e;
	const uint8_t *p;
	const char *why;
	struct buf *b;
	uint32_t type, len;
	size_t idx = 0;
	int r;

	if ((r = store__slurp(st, &b, err, errlen)) != 0)
		return r;
	if ((r = rec_get(b, STORE_REC_MAX, &type, &p, &len)) != 0) {
		r = store__damaged(st, r, idx, err, errlen);
		goto out;
	}
	if ((r = store__parse_header(st, type, p, len, &m->next_id, err, errlen)) != 0)
		goto out;
	for (idx = 1;; idx++) {
		if ((r = rec_get(b, STORE_REC_MAX, &type, &p, &len)) != 0) {
			r = store__damaged(st, r, idx, err, errlen);
			goto out;
		}
		if (type == REC_END)
			break;
		if (type != STORE_REC_ENTRY) {
			r = store__fail(err, errlen, KM_ERR_CORRUPT,
					"%s/%s: damaged at record %zu: unknown record type %u",
					st->dir, STORE_MANIFEST, idx, type);
			goto out;
		}
		if ((why = store__parse_entry(p, len, &e)) != NULL ||
		    (why = store__entry_insane(&e, prev)) != NULL) {
			r = store__fail(err, errlen, KM_ERR_CORRUPT,
					"%s/%s: damaged at record %zu: %s", st->dir,
					STORE_MANIFEST, idx, why);
			goto out;
		}
		if ((r = store__m_insert(m, &e)) != 0)
			goto out;
		prev = &m->e[m->n - 1];
	}
	if (buf_len(b) != 0) {
		r = store__fail(err, errlen, KM_ERR_CORRUPT,
				"%s/%s: damaged after record %zu: data after the end record",
				st->dir, STORE_MANIFEST, idx);
		goto out;
	}
	if (m->next_id == 0)
		m->next_id = 1;
	r = 0;
out:
	buf_free(b);
	return r;
}

static int store__encode(const struct store_manifest *m, struct buf **out)
{
	struct buf *b = NULL, *pl = NULL;
	const struct store_entry *e;
	size_t i, size;
	int r = -ENOMEM;

	*out = NULL;
	if (m->n > (STORE_MANIFEST_MAX - STORE_HDR_BYTES - REC_HDR_SIZE) / STORE_ENTRY_BYTES)
		return KM_ERR_TOO_LARGE;
	size = STORE_HDR_BYTES + REC_HDR_SIZE + m->n * STORE_ENTRY_BYTES;
	if ((b = buf_new(size)) == NULL || (pl = buf_new(STORE_REC_MAX)) == NULL)
		goto out;
	buf_set_bulk(b);
	buf_set_bulk(pl);
	if ((r = buf_put(pl, STORE_MAGIC, 8)) != 0 ||
	    (r = rec_put_field_u64(pl, STORE_HDR_MAJOR, STORE_VERSION_MAJOR)) != 0 ||
	    (r = rec_put_field_u64(pl, STORE_HDR_MINOR, STORE_VERSION_MINOR)) != 0 ||
	    (r = rec_put_field_u64(pl, STORE_HDR_NEXT_ID, m->next_id)) != 0 ||
	    (r = rec_put(b, REC_HEADER, buf_ptr(pl), (uint32_t)buf_len(pl))) != 0)
		goto out;
	for (i = 0; i < m->n; i++) {
		e = &m->e[i];
		buf_discard(pl);
		if ((r = rec_put_field_u64(pl, STORE_E_ID, e->id)) != 0 ||
		    (r = rec_put_field_u64(pl, STORE_E_PARENT, e->parent)) != 0 ||
		    (r = rec_put_field_u64(pl, STORE_E_KIND, e->kind)) != 0 ||
		    (r = rec_put_field_u64(pl, STORE_E_TIME_NS, e->time_ns)) != 0 ||
		    (r = rec_put_field_u64(pl, STORE_E_PAGES, e->pages)) != 0 ||
		    (r = rec_put_field_u64(pl, STORE_E_BYTES, e->bytes)) != 0 ||
		    (r = rec_put_field_u64(pl, STORE_E_PAUSE_NS, e->pause_ns)) != 0 ||
		    (r = rec_put_field_u64(pl, STORE_E_HASH, e->hash)) != 0 ||
		    (r = rec_put_field_u64(pl, STORE_E_CHAIN_POS, e->chain_pos)) != 0 ||
		    (r = rec_put(b, STORE_REC_ENTRY, buf_ptr(pl), (uint32_t)buf_len(pl))) != 0)
			goto out;
	}
	if ((r = rec_put(b, REC_END, NULL, 0)) != 0)
		goto out;
	*out = b;
	b = NULL;
out:
	buf_free(pl);
	buf_free(b);
	return r;
}

/*
 * Replaces the manifest by m, under DIR/lock: manifest.tmp written and
 * fsync'd, renamed over manifest, DIR fsync'd. *renamed says whether the
 * rename happened: past it, readers see the new manifest even if this
 * returns an error (a failed fsync of DIR).
 */
int store__write_manifest(const struct store *st, const struct store_manifest *m,
			  bool *renamed, char *err, size_t errlen)
{
	const char *step = "writing";
	struct buf *b = NULL;
	size_t len, half;
	int fd = -1, r;

	*renamed = false;
	if ((r = store__encode(m, &b)) != 0)
		return store__fail(err, errlen, r, "%s/%s: cannot hold %zu checkpoints: %s%s",
				   st->dir, STORE_MANIFEST, m->n, km_strerror(r),
				   r == KM_ERR_TOO_LARGE ? " (remove some)" : "");
	/*
	 * A new file each time, not O_TRUNC of a stale one: a leftover never
	 * lends the manifest its owner or mode. Under DIR/lock any
	 * manifest.tmp is a dead transaction's.
	 */
	if (unlinkat(st->dfd, STORE_MANIFEST_TMP, 0) < 0 && errno != ENOENT) {
		r = km_errno();
		goto out;
	}
	fd = openat(st->dfd, STORE_MANIFEST_TMP,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = km_errno();
		goto out;
	}
	len = buf_len(b);
	half = len / 2;
	if ((r = store__write_all(fd, buf_ptr(b), half)) != 0)
		goto out_unlink;
	store__crash_point("mid-manifest-write");
	if ((r = store__write_all(fd, buf_ptr(b) + half, len - half)) != 0)
		goto out_unlink;
	step = "syncing";
	if (fsync(fd) < 0) {
		r = km_errno();
		goto out_unlink;
	}
	r = close(fd) < 0 ? km_errno() : 0;
	fd = -1;
	if (r != 0)
		goto out_unlink;
	store__crash_point("after-manifest-write");
	step = "renaming";
	if (renameat(st->dfd, STORE_MANIFEST_TMP, st->dfd, STORE_MANIFEST) < 0) {
		r = km_errno();
		goto out_unlink;
	}
	*renamed = true;
	store__crash_point("after-manifest-rename");
	step = "syncing the directory after renaming";
	r = store__sync_dir(st);
	store__crash_point("after-manifest-fsync");
	goto out;
out_unlink:
	unlinkat(st->dfd, STORE_MANIFEST_TMP, 0);
out:
	if (fd >= 0)
		close(fd);
	buf_free(b);
	if (r != 0)
		store__fail(err, errlen, r, "%s/%s: %s %s failed: %s", st->dir,
			    *renamed ? STORE_MANIFEST : STORE_MANIFEST_TMP, step,
			    *renamed ? "it" : "the new manifest", km_strerror(r));
	return r;
}

/* One read-modify-write of the manifest under DIR/lock; *renamed as store__write_manifest(). */
int store__transact(const struct store *st, store_change_fn *change, void *ctx,
		    bool *renamed, char *err, size_t errlen)
{
	struct store_manifest m = { 0 };
	int lockfd, r;

	*renamed = false;
	if ((r = store__lock(st, &lockfd, err, errlen)) != 0)
		return r;
	if ((r = store__read_manifest(st, &m, err, errlen)) == 0 &&
	    (r = change(st, &m, ctx, err, errlen)) == 0)
		r = store__write_manifest(st, &m, renamed, err, errlen);
	free(m.e);
	store__unlock(lockfd);
	return r;
}
