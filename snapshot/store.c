/*
 * The crash-safe checkpoint store. See store.h for the layout and the
 * contract; the timelines below say why each step is where it is. This
 * file: names, DIR/lock, open, begin, commit; the manifest is
 * store-manifest.c's, removal and gc store-gc.c's, chains and retention
 * store-chain.c's (store-int.h between them).
 *
 * Commit (store__commit_replacing):
 *   writer writes .ckpt-N.P.tmp (locked)   crash: an abandoned temp, gc's
 *   fsync(file)                            crash: same
 *   rename -> ckpt-N.kmc                   crash: an unlisted file, gc's
 *   fsync(DIR)                             the name is durable before it is listed
 *   lock DIR/lock, read manifest,
 *   write manifest.tmp, fsync, rename      crash before: not listed; after: listed
 *   fsync(DIR), unlock, close(file)        the file's lock goes last, so gc
 *                                          never sees it unlisted and unlocked
 *                                          while its writer lives
 * Removal: the manifest transaction delists, then the files go, then
 * fsync(DIR): a crash leaves unlisted files, never a listed file missing.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "buf.h"
#include "err.h"
#include "record.h"
#include "snapshot/store.h"
#include "snapshot/store-int.h"

#ifdef KM_FAULT_INJECTION
const char *const store__crash_points[] = {
	"after-tmp-write", "after-fsync", "after-rename", "after-dir-fsync",
	"mid-manifest-write", "after-manifest-write", "after-manifest-rename",
	"after-manifest-fsync", "mid-remove", "after-remove", NULL,
};

/* Dies as a power cut or the OOM killer would: no cleanup, no unlock but the kernel's. */
void store__crash_point(const char *name)
{
	const char *want = getenv("KVM_MIGRATE_STORE_CRASH");

	if (want && !strcmp(want, name))
		kill(getpid(), SIGKILL);
}

/* The project's fault variable (docs/protocol.md s.5): "store-fsync-enospc". */
bool store__fault(const char *name)
{
	const char *fault = getenv("KVM_MIGRATE_FAULT");

	return fault && !strcmp(fault, name);
}
#endif

/* Writes the sentence into err (if any) and returns r, for `return store__fail(...)`. */
int store__fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* ---- names and files ------------------------------------------------------ */

/* Exactly n decimal digits at s (n <= 19, so no overflow). */
static bool store__digits(const char *s, size_t n, uint64_t *v)
{
	size_t i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (uint64_t)(s[i] - '0');
	}
	return true;
}

static enum store_name store__classify(const char *name, uint64_t *id)
{
	size_t len = strlen(name), i;
	uint64_t pid;

	*id = 0;
	if (!strcmp(name, STORE_MANIFEST))
		return STORE_NAME_MANIFEST;
	if (!strcmp(name, STORE_MANIFEST_TMP))
		return STORE_NAME_MANIFEST_TMP;
	if (!strcmp(name, STORE_LOCK))
		return STORE_NAME_LOCK;
	if (len == 17 && !strncmp(name, "ckpt-", 5) && store__digits(name + 5, 8, id) &&
	    !strcmp(name + 13, ".kmc"))
		return *id > 0 ? STORE_NAME_CKPT : STORE_NAME_OTHER;
	/* ".ckpt-" 8 digits "." 1..10 digits ".tmp" */
	if (len >= 20 && len <= 29 && !strncmp(name, ".ckpt-", 6) &&
	    store__digits(name + 6, 8, id) && name[14] == '.' &&
	    !strcmp(name + len - 4, ".tmp")) {
		i = len - 4 - 15;
		if (store__digits(name + 15, i, &pid) && *id > 0)
			return STORE_NAME_TMP;
	}
	*id = 0;
	return STORE_NAME_OTHER;
}

static void store__ckpt_name(char out[32], uint64_t id)
{
	snprintf(out, 32, "ckpt-%08" PRIu64 ".kmc", id);
}

/*
 * DIR, or a file of the store in it (name), is ours alone: a real
 * directory or regular file (-ELOOP for a symlink or anything else), owned
 * by us (KM_ERR_AUTH), not writable by group or others (KM_ERR_STATE):
 * whoever can write there decides what a restore puts into the guest.
 */
int store__check_stat(const struct store *st, const char *name, const struct stat *sb,
		      char *err, size_t errlen)
{
	const char *sep = name ? "/" : "", *nm = name ? name : "";
	bool dir = name == NULL;

	if (dir ? !S_ISDIR(sb->st_mode) : !S_ISREG(sb->st_mode))
		return store__fail(err, errlen, -ELOOP, "%s%s%s: a symlink or not a %s: refused",
				   st->dir, sep, nm, dir ? "directory" : "regular file");
	if (sb->st_uid != geteuid())
		return store__fail(err, errlen, KM_ERR_AUTH,
				   "%s%s%s: owned by uid %u, not by this user (uid %u): refused",
				   st->dir, sep, nm, (unsigned int)sb->st_uid,
				   (unsigned int)geteuid());
	if (sb->st_mode & 022)
		return store__fail(err, errlen, KM_ERR_STATE,
				   "%s%s%s: writable by group or others (mode %04o): refused, "
				   "since they could change what a restore runs (chmod go-w)",
				   st->dir, sep, nm, (unsigned int)(sb->st_mode & 07777));
	return 0;
}

int store__check_fd(const struct store *st, const char *name, int fd, char *err,
		    size_t errlen)
{
	struct stat sb;

	if (fstat(fd, &sb) < 0)
		return store__fail(err, errlen, km_errno(), "%s/%s: %s", st->dir, name,
				   km_strerror(km_errno()));
	return store__check_stat(st, name, &sb, err, errlen);
}

/* fsync of DIR. EINVAL: a file system that cannot sync directories; nothing more to do. */
int store__sync_dir(const struct store *st)
{
	if (fsync(st->dfd) < 0 && errno != EINVAL)
		return km_errno();
	return 0;
}

int store__write_all(int fd, const uint8_t *p, size_t len)
{
	ssize_t w;

	while (len > 0) {
		w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return km_errno();
		if (w == 0)
			return -EIO;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/*
 * Calls fn for every name of DIR that is the store's (not "." or foreign
 * files); stops at its first error. A fresh open of "." gives readdir an
 * offset of its own, whatever else uses dfd.
 */
int store__scan(const struct store *st, store_scan_fn *fn, void *ctx, char *err,
		size_t errlen)
{
	struct dirent *de;
	enum store_name kind;
	uint64_t id;
	DIR *d;
	int fd, r = 0;

	if ((fd = openat(st->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return store__fail(err, errlen, km_errno(), "%s: cannot list it: %s", st->dir,
				   km_strerror(km_errno()));
	if ((d = fdopendir(fd)) == NULL) {
		r = km_errno();
		close(fd);
		return store__fail(err, errlen, r, "%s: cannot list it: %s", st->dir,
				   km_strerror(r));
	}
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL) {
			if (errno != 0)
				r = store__fail(err, errlen, km_errno(), "%s: cannot list it: %s",
						st->dir, km_strerror(km_errno()));
			break;
		}
		kind = store__classify(de->d_name, &id);
		if (kind == STORE_NAME_OTHER)
			continue;
		if ((r = fn(st, de->d_name, kind, id, ctx, err, errlen)) != 0)
			break;
	}
	closedir(d);
	return r;
}

/* ---- DIR/lock ------------------------------------------------------------- */

static uint64_t store__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Takes DIR/lock for one transaction: *lockfd, closed by store__unlock().
 * A fresh open each time gives each transaction its own open file
 * description, so that two threads (or two store handles) of one process
 * exclude each other as two processes do. F_OFD_SETLKW cannot be bounded
 * without a signal, so it is polled, from 0.1 ms up to 10 ms apart (a
 * transaction lasts two fsyncs), until STORE_LOCK_WAIT_MS.
 */
int store__lock(const struct store *st, int *lockfd, char *err, size_t errlen)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	struct timespec nap = { 0, 100000 };
	uint64_t deadline = store__now_ms() + STORE_LOCK_WAIT_MS;
	int fd, r;

	*lockfd = -1;
	fd = openat(st->dfd, STORE_LOCK, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return store__fail(err, errlen, km_errno(), "%s/%s: cannot open it: %s", st->dir,
				   STORE_LOCK, km_strerror(km_errno()));
	if ((r = store__check_fd(st, STORE_LOCK, fd, err, errlen)) != 0)
		goto out_close;
	while (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		if (errno != EAGAIN && errno != EACCES) {
			r = store__fail(err, errlen, km_errno(), "%s/%s: cannot lock it: %s",
					st->dir, STORE_LOCK, km_strerror(km_errno()));
			goto out_close;
		}
		if (store__now_ms() >= deadline) {
			r = store__fail(err, errlen, KM_ERR_TIMEOUT,
					"%s/%s: another process has held it for %u s",
					st->dir, STORE_LOCK, STORE_LOCK_WAIT_MS / 1000);
			goto out_close;
		}
		nanosleep(&nap, NULL);
		if (nap.tv_nsec < 10000000L)
			nap.tv_nsec *= 2;
	}
	*lockfd = fd;
	return 0;
out_close:
	close(fd);
	return r;
}

void store__unlock(int lockfd)
{
	if (lockfd >= 0)
		close(lockfd);
}

/* ---- open and close ------------------------------------------------------- */

static int store__check_one(const struct store *st, const char *name, enum store_name kind,
			    uint64_t id, void *ctx, char *err, size_t errlen)
{
	struct stat sb;

	if (fstatat(st->dfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : store__fail(err, errlen, km_errno(), "%s/%s: %s",
							  st->dir, name,
							  km_strerror(km_errno()));
	return store__check_stat(st, name, &sb, err, errlen);
}

static int store__any_ckpt(const struct store *st, const char *name, enum store_name kind,
			   uint64_t id, void *ctx, char *err, size_t errlen)
{
	/* A copy: name dies with the directory stream. */
	if (kind == STORE_NAME_CKPT)
		snprintf(ctx, 32, "%s", name);
	return 0;
}

/*
 * A new store's empty manifest, under DIR/lock (two creators race
 * harmlessly). Never over checkpoint files without one: an empty manifest
 * would make store__gc() delete them all.
 */
static int store__init_manifest(const struct store *st, char *err, size_t errlen)
{
	struct store_manifest m = { .next_id = 1 };
	char ckpt[32] = "";
	struct stat sb;
	bool renamed;
	int lockfd, r;

	if ((r = store__lock(st, &lockfd, err, errlen)) != 0)
		return r;
	if (fstatat(st->dfd, STORE_MANIFEST, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		goto out;
	if ((r = store__scan(st, store__any_ckpt, ckpt, err, errlen)) != 0)
		goto out;
	if (ckpt[0]) {
		r = store__fail(err, errlen, -ENOENT,
				"%s: holds checkpoint files (%s) but no manifest: not making an "
				"empty one, which would disown them", st->dir, ckpt);
		goto out;
	}
	r = store__write_manifest(st, &m, &renamed, err, errlen);
out:
	store__unlock(lockfd);
	return r;
}

int store__open(const char *dir, bool create, struct store **out, char *err, size_t errlen)
{
	struct store *st;
	struct stat sb;
	int r;

	*out = NULL;
	if (dir == NULL || *dir == 0)
		return store__fail(err, errlen, KM_ERR_INVALID, "no checkpoint directory given");
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -ENOMEM;
	st->dfd = -1;
	if (strlen(dir) >= sizeof(st->dir) - 32) {
		r = store__fail(err, errlen, KM_ERR_TOO_LARGE, "%.64s...: path too long", dir);
		goto out_free;
	}
	strcpy(st->dir, dir);
	if (create && mkdir(dir, 0700) < 0 && errno != EEXIST) {
		r = store__fail(err, errlen, km_errno(), "%s: cannot create it: %s", dir,
				km_strerror(km_errno()));
		goto out_free;
	}
	st->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (st->dfd < 0) {
		r = errno == ENOTDIR || errno == ELOOP ? -ELOOP : km_errno();
		r = store__fail(err, errlen, r, "%s: %s", dir, r == -ELOOP ?
				"a symlink or not a directory: refused" : km_strerror(r));
		goto out_free;
	}
	if (fstat(st->dfd, &sb) < 0) {
		r = store__fail(err, errlen, km_errno(), "%s: %s", dir, km_strerror(km_errno()));
		goto out_free;
	}
	if ((r = store__check_stat(st, NULL, &sb, err, errlen)) != 0 ||
	    (r = store__scan(st, store__check_one, NULL, err, errlen)) != 0)
		goto out_free;
	if (fstatat(st->dfd, STORE_MANIFEST, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT) {
			r = store__fail(err, errlen, km_errno(), "%s/%s: %s", dir, STORE_MANIFEST,
					km_strerror(km_errno()));
			goto out_free;
		}
		if (!create) {
			r = store__fail(err, errlen, -ENOENT,
					"%s: not a checkpoint store (no manifest)", dir);
			goto out_free;
		}
		if ((r = store__init_manifest(st, err, errlen)) != 0)
			goto out_free;
	}
	*out = st;
	return 0;
out_free:
	store__close(st);
	return r;
}

void store__close(struct store *st)
{
	if (st == NULL)
		return;
	if (st->dfd >= 0)
		close(st->dfd);
	free(st);
}

const char *store__dir(const struct store *st)
{
	return st->dir;
}

int store__path(struct store *st, uint64_t id, char *out, size_t outlen)
{
	int n;

	if (id == 0 || id > STORE_ID_MAX)
		return KM_ERR_INVALID;
	n = snprintf(out, outlen, "%s/ckpt-%08" PRIu64 ".kmc", st->dir, id);
	return n < 0 || (size_t)n >= outlen ? KM_ERR_TOO_LARGE : 0;
}

int store__list(struct store *st, struct store_entry **out, size_t *n, char *err, size_t errlen)
{
	struct store_manifest m = { 0 };
	int r;

	*out = NULL;
	*n = 0;
	if ((r = store__read_manifest(st, &m, err, errlen)) != 0) {
		free(m.e);
		return r;
	}
	*out = m.e;
	*n = m.n;
	return 0;
}

/* ---- begin, commit, abort ------------------------------------------------- */

static int store__max_file_id(const struct store *st, const char *name, enum store_name kind,
			      uint64_t id, void *ctx, char *err, size_t errlen)
{
	uint64_t *max = ctx;

	if ((kind == STORE_NAME_CKPT || kind == STORE_NAME_TMP) && id > *max)
		*max = id;
	return 0;
}

int store__begin(struct store *st, struct store_pending *p, char *err, size_t errlen)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	struct store_manifest m = { 0 };
	uint64_t id, max_file = 0;
	int lockfd, fd, r;

	p->fd = -1;
	p->id = 0;
	p->tmp[0] = 0;
	/*
	 * The id is chosen and its temp file made and locked under DIR/lock:
	 * a concurrent begin sees the file and goes above it, and store__gc()
	 * (which takes DIR/lock too) never sees it unlocked.
	 */
	if ((r = store__lock(st, &lockfd, err, errlen)) != 0)
		return r;
	if ((r = store__read_manifest(st, &m, err, errlen)) != 0 ||
	    (r = store__scan(st, store__max_file_id, &max_file, err, errlen)) != 0)
		goto out;
	id = m.next_id > max_file ? m.next_id : max_file + 1;
	if (id > STORE_ID_MAX) {
		r = store__fail(err, errlen, KM_ERR_TOO_LARGE,
				"%s: all %llu checkpoint ids are used up", st->dir, STORE_ID_MAX);
		goto out;
	}
	snprintf(p->tmp, sizeof(p->tmp), ".ckpt-%08" PRIu64 ".%ld.tmp", id, (long)getpid());
	fd = openat(st->dfd, p->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = store__fail(err, errlen, km_errno(), "%s/%s: cannot create it: %s", st->dir,
				p->tmp, km_strerror(km_errno()));
		goto out;
	}
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		r = store__fail(err, errlen, km_errno(), "%s/%s: cannot lock it: %s", st->dir,
				p->tmp, km_strerror(km_errno()));
		unlinkat(st->dfd, p->tmp, 0);
		close(fd);
		goto out;
	}
	p->fd = fd;
	p->id = id;
out:
	free(m.e);
	store__unlock(lockfd);
	if (r != 0)
		p->tmp[0] = 0;
	return r;
}

void store__abort(struct store *st, struct store_pending *p)
{
	if (p == NULL || p->fd < 0)
		return;
	/* Unlinked while still locked: gc never takes it for abandoned in between. */
	if (p->tmp[0])
		unlinkat(st->dfd, p->tmp, 0);
	close(p->fd);
	p->fd = -1;
	p->tmp[0] = 0;
}

int store__file_hash(int fd, uint64_t *bytes, uint64_t *hash)
{
	XXH3_state_t *xs = NULL;
	uint8_t *chunk = NULL;
	struct stat sb;
	uint64_t off = 0, size;
	size_t want;
	ssize_t n;
	int r;

	if (fstat(fd, &sb) < 0)
		return km_errno();
	if (!S_ISREG(sb.st_mode))
		return KM_ERR_STATE;
	size = (uint64_t)sb.st_size;
	r = -ENOMEM;
	/* A heap state, as lib/record.c: the stable ABI of the shared libxxhash. */
	if ((xs = XXH3_createState()) == NULL || (chunk = malloc(STORE_HASH_CHUNK)) == NULL ||
	    XXH3_64bits_reset(xs) != XXH_OK)
		goto out;
	while (off < size) {
		want = size - off < STORE_HASH_CHUNK ? (size_t)(size - off) : STORE_HASH_CHUNK;
		n = pread(fd, chunk, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = km_errno();
			goto out;
		}
		if (n == 0) {
			r = KM_ERR_TRUNCATED;	/* shrank under us: not what was written */
			goto out;
		}
		if (XXH3_64bits_update(xs, chunk, (size_t)n) != XXH_OK)
			goto out;
		off += (uint64_t)n;
	}
	*bytes = size;
	*hash = XXH3_64bits_digest(xs);
	r = 0;
out:
	free(chunk);
	XXH3_freeState(xs);
	return r;
}

/* Renames without ever replacing; plain rename where the file system lacks NOREPLACE. */
static int store__rename_new(const struct store *st, const char *from, const char *to)
{
	if (renameat2(st->dfd, from, st->dfd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
		return km_errno();
	/* The id was reserved under DIR/lock: the name is free; NOREPLACE is a second guard. */
	return renameat(st->dfd, from, st->dfd, to) < 0 ? km_errno() : 0;
}

static int store__cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

bool store__in(const uint64_t *sorted, size_t n, uint64_t id)
{
	return n > 0 && bsearch(&id, sorted, n, sizeof(*sorted), store__cmp_u64) != NULL;
}

/* A sorted copy of ids without repeats, in *out (malloc'd), *nout of them. */
int store__sorted_ids(const uint64_t *ids, size_t n, uint64_t **out, size_t *nout)
{
	size_t i, k = 0;
	uint64_t *s;

	*out = NULL;
	*nout = 0;
	if (n == 0)
		return 0;
	if ((s = malloc(n * sizeof(*s))) == NULL)
		return -ENOMEM;
	memcpy(s, ids, n * sizeof(*s));
	qsort(s, n, sizeof(*s), store__cmp_u64);
	for (i = 0; i < n; i++)
		if (k == 0 || s[k - 1] != s[i])
			s[k++] = s[i];
	*out = s;
	*nout = k;
	return 0;
}

/* Drops the entries whose ids are in sorted[] from m. */
void store__m_drop(struct store_manifest *m, const uint64_t *sorted, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i < m->n; i++)
		if (!store__in(sorted, n, m->e[i].id))
			m->e[k++] = m->e[i];
	m->n = k;
}

struct store_commit_ctx {
	struct store_entry *e;
	const uint64_t *drop;	/* sorted, no repeats */
	size_t ndrop;
};

/*
 * Compaction's half of a transaction: drop must be exactly the chain of
 * its member with the highest chain_pos (top), which the new base (id
 * base) stands for. Children of top move onto base; anything else that
 * depends on a dropped entry makes it fail.
 */
static int store__replace_chain(const struct store *st, struct store_manifest *m, uint64_t base,
				const uint64_t *drop, size_t ndrop, char *err, size_t errlen)
{
	struct store_entry *top = NULL, *x, *cur;
	size_t i, len = 0, depth;

	for (i = 0; i < ndrop; i++) {
		if ((x = store__find(m->e, m->n, drop[i])) == NULL)
			return store__fail(err, errlen, -ENOENT,
					   "%s: checkpoint %" PRIu64 " is not listed", st->dir,
					   drop[i]);
		if (top == NULL || x->chain_pos > top->chain_pos)
			top = x;
	}
	/* From top down, every step in drop, until drop is used up: then it is one chain. */
	for (cur = top; cur != NULL && len < ndrop && store__in(drop, ndrop, cur->id); len++)
		cur = cur->kind == STORE_INCR ? store__find(m->e, m->n, cur->parent) : NULL;
	if (len != ndrop)
		return store__fail(err, errlen, KM_ERR_INVALID,
				   "%s: the checkpoints to replace are not one chain ending at "
				   "checkpoint %" PRIu64, st->dir, top->id);
	for (i = 0; i < m->n; i++) {
		x = &m->e[i];
		if (x->kind != STORE_INCR || store__in(drop, ndrop, x->id) ||
		    !store__in(drop, ndrop, x->parent))
			continue;
		if (x->parent != top->id)
			return store__fail(err, errlen, KM_ERR_STATE,
					   "%s: checkpoint %" PRIu64 " depends on %" PRIu64
					   ", which the compaction drops", st->dir, x->id,
					   x->parent);
		x->parent = base;
	}
	store__m_drop(m, drop, ndrop);
	/* Chain positions below the new base: its depth under it, a walk of at most n steps. */
	for (i = 0; i < m->n; i++) {
		for (cur = &m->e[i], depth = 0; cur && cur->kind == STORE_INCR && depth <= m->n;
		     depth++) {
			if (cur->parent == base) {
				m->e[i].chain_pos = depth + 1;
				break;
			}
			cur = store__find(m->e, m->n, cur->parent);
		}
	}
	return 0;
}

static int store__apply_commit(const struct store *st, struct store_manifest *m, void *arg,
			       char *err, size_t errlen)
{
	struct store_commit_ctx *c = arg;
	struct store_entry *e = c->e;
	const struct store_entry *par;
	int r;

	if (store__find(m->e, m->n, e->id) != NULL)
		return store__fail(err, errlen, KM_ERR_STATE,
				   "%s: checkpoint %" PRIu64 " is listed already", st->dir, e->id);
	e->chain_pos = 0;
	if (e->kind == STORE_INCR) {
		if ((par = store__find(m->e, m->n, e->parent)) == NULL)
			return store__fail(err, errlen, KM_ERR_STATE,
					   "%s: checkpoint %" PRIu64 ": its parent %" PRIu64
					   " is not listed (removed meanwhile?)", st->dir, e->id,
					   e->parent);
		e->chain_pos = par->chain_pos + 1;
	}
	if ((r = store__m_insert(m, e)) != 0)
		return r;
	if (c->ndrop > 0)
		return store__replace_chain(st, m, e->id, c->drop, c->ndrop, err, errlen);
	return 0;
}

/* Unlinks the files of ids (delisted); how many went. The first failure is in *r. */
unsigned int store__unlink_ids(const struct store *st, const uint64_t *ids, size_t n,
			       int *r, char *err, size_t errlen)
{
	unsigned int gone = 0;
	char name[32];
	size_t i;

	*r = 0;
	for (i = 0; i < n; i++) {
		store__ckpt_name(name, ids[i]);
		if (unlinkat(st->dfd, name, 0) == 0) {
			if (++gone == 1)
				store__crash_point("mid-remove");
		} else if (errno != ENOENT && *r == 0) {
			*r = store__fail(err, errlen, km_errno(),
					 "%s/%s: delisted, but cannot remove it (store__gc will "
					 "retry): %s", st->dir, name, km_strerror(km_errno()));
		}
	}
	store__crash_point("after-remove");
	return gone;
}

int store__commit_replacing(struct store *st, struct store_pending *p, struct store_entry *e,
			    const uint64_t *drop, size_t ndrop, char *err, size_t errlen)
{
	struct store_commit_ctx c = { .e = e };
	const char *step = "checking it";
	char final[32];
	bool placed = false, renamed = false;
	uint64_t *sdrop = NULL;
	int r, r2;

	if (p == NULL || p->fd < 0)
		return store__fail(err, errlen, KM_ERR_STATE, "%s: no checkpoint is pending",
				   st->dir);
	e->id = p->id;
	store__ckpt_name(final, p->id);
	if (!(e->kind == STORE_FULL && e->parent == 0) &&
	    !(e->kind == STORE_INCR && e->parent != 0 && e->parent != e->id && ndrop == 0)) {
		r = store__fail(err, errlen, KM_ERR_INVALID,
				"%s: checkpoint %" PRIu64 ": kind %" PRIu64 " with parent %"
				PRIu64 " is not a base nor an increment%s", st->dir, e->id,
				e->kind, e->parent, ndrop ? " (a replacement must be a base)" : "");
		goto out_remove;
	}
	if ((r = store__sorted_ids(drop, ndrop, &sdrop, &c.ndrop)) != 0)
		goto out_fail;
	c.drop = sdrop;
	store__crash_point("after-tmp-write");
	step = "reading it back";
	if ((r = store__file_hash(p->fd, &e->bytes, &e->hash)) != 0)
		goto out_fail;
	step = "fsync";
	if (store__fault("store-fsync-enospc"))
		r = -ENOSPC;
	else if (fsync(p->fd) < 0)
		r = km_errno();
	if (r != 0)
		goto out_fail;
	store__crash_point("after-fsync");
	step = "renaming it";
	if ((r = store__rename_new(st, p->tmp, final)) != 0)
		goto out_fail;
	placed = true;
	store__crash_point("after-rename");
	/* The name must be durable before the manifest lists it. */
	step = "syncing the directory";
	if ((r = store__sync_dir(st)) != 0)
		goto out_fail;
	store__crash_point("after-dir-fsync");
	step = "the manifest";
	r = store__transact(st, store__apply_commit, &c, &renamed, err, errlen);
	if (r != 0 && renamed) {
		/* Listed, file in place: only the durability of the listing is in doubt. */
		store__fail(err, errlen, r, "%s: checkpoint %" PRIu64 " is listed, but may not "
			    "survive a power loss: syncing the directory failed: %s", st->dir,
			    e->id, km_strerror(r));
		goto out_close;
	}
	if (r != 0) {
		if (r == -ENOSPC)
			store__fail(err, errlen, r, "%s: no space left while writing checkpoint %"
				    PRIu64 " (its manifest entry)", st->dir, e->id);
		goto out_remove;
	}
	/* Listed. The replaced files go now; one that will not is store__gc()'s. */
	if (c.ndrop > 0 && store__unlink_ids(st, c.drop, c.ndrop, &r2, NULL, 0) > 0)
		store__sync_dir(st);
	goto out_close;
out_fail:
	if (r == -ENOSPC)
		store__fail(err, errlen, r, "%s: no space left while writing checkpoint %" PRIu64
			    " (%s)", st->dir, e->id, step);
	else
		store__fail(err, errlen, r, "%s: checkpoint %" PRIu64 ": %s failed: %s",
			    st->dir, e->id, step, km_strerror(r));
out_remove:
	/* Still locked by us: gc cannot take it meanwhile. */
	unlinkat(st->dfd, placed ? final : p->tmp, 0);
	if (placed)
		store__sync_dir(st);
out_close:
	free(sdrop);
	close(p->fd);
	p->fd = -1;
	p->tmp[0] = 0;
	return r;
}

int store__commit(struct store *st, struct store_pending *p, struct store_entry *e,
		  char *err, size_t errlen)
{
	return store__commit_replacing(st, p, e, NULL, 0, err, errlen);
}
