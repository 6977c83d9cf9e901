/*
 * Unit tests for snapshot/store*.c: commits, listing and chains, ids,
 * damaged manifests, permissions, retention plans, compaction, and a
 * SIGKILL at every crash point of a commit and of a removal (builds with
 * --enable-fault-injection; others skip those).
 *
 * Each test works in a fresh mkdtemp directory under $TMPDIR (or /tmp);
 * children are forked where a second process or a crash is the point, and
 * report through their exit status only (no cmocka in a child).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xxhash.h>

#include "unit.h"
#include "buf.h"
#include "record.h"
#include "snapshot/store.h"

#define ERRLEN 1024

struct fix {
	char tmp[256];		/* the mkdtemp directory */
	char dir[300];		/* the store in it: tmp/ckpts */
};

static int setup(void **state)
{
	const char *t = getenv("TMPDIR");
	struct fix *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->tmp, sizeof(f->tmp), "%s/km-test-store-XXXXXX", t && *t ? t : "/tmp");
	if (mkdtemp(f->tmp) == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/ckpts", f->tmp);
	*state = f;
	return 0;
}

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

/* rm -rf in-process: a shell per test costs more than most tests here. */
static int teardown(void **state)
{
	struct fix *f = *state;
	int r = nftw(f->tmp, remove_one, 16, FTW_DEPTH | FTW_PHYS);

	free(f);
	return r == 0 ? 0 : -1;
}

/* Fails with the call, the error code and the store's sentence. */
#define assert_store(expr, want, err) do {					\
	int got_ = (expr), want_ = (want);					\
	if (got_ != want_)							\
		fail_msg("%s\n  got  %d (%s): %s\n  want %d (%s)", #expr,	\
			 got_, km_strerror(got_), (err), want_,			\
			 km_strerror(want_));					\
} while (0)

#define assert_contains(text, part) do {					\
	if (strstr((text), (part)) == NULL)					\
		fail_msg("\"%s\"\n  does not contain \"%s\"", (text), (part));	\
} while (0)

/* ---- helpers (no cmocka inside: children use them too) -------------------- */

static size_t content_len(uint64_t seed)
{
	return 3000 + (size_t)(seed * 1237 % 9000);
}

/* Writes the checkpoint content of seed to fd: 0, or -1. */
static int write_content(int fd, uint64_t seed)
{
	size_t len = content_len(seed), i, off = 0;
	uint8_t *p = malloc(len);
	ssize_t w;

	if (p == NULL)
		return -1;
	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 131 + seed * 17 + (i >> 7));
	while (off < len) {
		if ((w = write(fd, p + off, len - off)) <= 0) {
			free(p);
			return -1;
		}
		off += (size_t)w;
	}
	free(p);
	return 0;
}

/* Begins, writes and commits one checkpoint: the store's result. */
static int try_commit(struct store *st, uint64_t kind, uint64_t parent, uint64_t seed,
		      struct store_entry *out, char *err)
{
	struct store_entry e = {
		.kind = kind, .parent = parent, .time_ns = 1000000 + seed,
		.pages = seed * 3, .pause_ns = seed * 7,
	};
	struct store_pending p;
	int r;

	if ((r = store__begin(st, &p, err, ERRLEN)) != 0)
		return r;
	if (write_content(p.fd, seed) != 0) {
		store__abort(st, &p);
		return -EIO;
	}
	r = store__commit(st, &p, &e, err, ERRLEN);
	if (out)
		*out = e;
	return r;
}

static pid_t fork_child(void)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	return pid;
}

static int wait_child(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

/* ---- helpers of the parent ------------------------------------------------ */

static struct store *open_store(const char *dir)
{
	char err[ERRLEN];
	struct store *st;

	assert_store(store__open(dir, true, &st, err, sizeof(err)), 0, err);
	return st;
}

static uint64_t commit(struct store *st, uint64_t kind, uint64_t parent, uint64_t seed,
		       struct store_entry *out)
{
	struct store_entry e;
	char err[ERRLEN] = "";

	assert_store(try_commit(st, kind, parent, seed, &e, err), 0, err);
	assert_int_equal(e.bytes, content_len(seed));
	if (out)
		*out = e;
	return e.id;
}

static struct store_entry *list(struct store *st, size_t *n)
{
	struct store_entry *e;
	char err[ERRLEN] = "";

	assert_store(store__list(st, &e, n, err, sizeof(err)), 0, err);
	return e;
}

/* Every listed file is there, with the size and XXH3 the manifest says. */
static void verify_files(struct store *st, const struct store_entry *e, size_t n)
{
	char path[600];
	uint8_t buf[16384];
	XXH3_state_t *xs = XXH3_createState();
	uint64_t size;
	ssize_t got;
	size_t i;
	int fd;

	assert_non_null(xs);
	for (i = 0; i < n; i++) {
		assert_ok(store__path(st, e[i].id, path, sizeof(path)));
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			fail_msg("listed checkpoint %" PRIu64 ": %s: %s", e[i].id, path,
				 strerror(errno));
		XXH3_64bits_reset(xs);
		size = 0;
		while ((got = read(fd, buf, sizeof(buf))) > 0) {
			XXH3_64bits_update(xs, buf, (size_t)got);
			size += (uint64_t)got;
		}
		close(fd);
		if (size != e[i].bytes || XXH3_64bits_digest(xs) != e[i].hash)
			fail_msg("listed checkpoint %" PRIu64 ": %" PRIu64 " bytes, listed %"
				 PRIu64 "; hash %s", e[i].id, size, e[i].bytes,
				 XXH3_64bits_digest(xs) == e[i].hash ? "matches" : "differs");
	}
	XXH3_freeState(xs);
}

/* How many names in dir are neither manifest, lock nor a listed checkpoint's file. */
static int leftovers(const char *dir, const struct store_entry *e, size_t n)
{
	struct dirent *de;
	char want[32];
	DIR *d = opendir(dir);
	size_t i;
	int extra = 0;
	bool ok;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		ok = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		     !strcmp(de->d_name, "manifest") || !strcmp(de->d_name, "lock");
		for (i = 0; i < n && !ok; i++) {
			snprintf(want, sizeof(want), "ckpt-%08" PRIu64 ".kmc", e[i].id);
			ok = !strcmp(de->d_name, want);
		}
		if (!ok) {
			print_message("# left over: %s\n", de->d_name);
			extra++;
		}
	}
	closedir(d);
	return extra;
}

static void assert_entries_equal(const struct store_entry *got, const struct store_entry *want,
				 size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (memcmp(&got[i], &want[i], sizeof(got[i])) == 0)
			continue;
		fail_msg("entry %zu: got id %" PRIu64 " parent %" PRIu64 " kind %" PRIu64
			 " time %" PRIu64 " pages %" PRIu64 " bytes %" PRIu64 " pause %"
			 PRIu64 " pos %" PRIu64 "\n  want id %" PRIu64 " parent %" PRIu64
			 " kind %" PRIu64 " time %" PRIu64 " pages %" PRIu64 " bytes %" PRIu64
			 " pause %" PRIu64 " pos %" PRIu64, i, got[i].id, got[i].parent,
			 got[i].kind, got[i].time_ns, got[i].pages, got[i].bytes,
			 got[i].pause_ns, got[i].chain_pos, want[i].id, want[i].parent,
			 want[i].kind, want[i].time_ns, want[i].pages, want[i].bytes,
			 want[i].pause_ns, want[i].chain_pos);
	}
}

static void path_in(char *out, size_t len, const char *dir, const char *name)
{
	assert_true((size_t)snprintf(out, len, "%s/%s", dir, name) < len);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	struct stat sb;
	uint8_t *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	p = malloc((size_t)sb.st_size + 1);
	assert_non_null(p);
	assert_int_equal(read(fd, p, (size_t)sb.st_size), sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return p;
}

/* ---- commit, list, chain -------------------------------------------------- */

static void test_commit_list_chain(void **state)
{
	struct fix *f = *state;
	struct store *st = open_store(f->dir), *again;
	struct store_entry want[5], *e;
	uint64_t ids[5];
	char err[ERRLEN] = "", path[600];
	struct stat sb;
	size_t n, len;

	assert_int_equal(stat(f->dir, &sb), 0);
	assert_int_equal(sb.st_mode & 077, 0);
	e = list(st, &n);
	assert_int_equal(n, 0);
	free(e);

	assert_int_equal(commit(st, STORE_FULL, 0, 1, &want[0]), 1);
	assert_int_equal(commit(st, STORE_INCR, 1, 2, &want[1]), 2);
	assert_int_equal(commit(st, STORE_INCR, 2, 3, &want[2]), 3);
	assert_int_equal(commit(st, STORE_FULL, 0, 4, &want[3]), 4);
	assert_int_equal(commit(st, STORE_INCR, 4, 5, &want[4]), 5);
	assert_int_equal(want[0].chain_pos, 0);
	assert_int_equal(want[2].chain_pos, 2);
	assert_int_equal(want[3].chain_pos, 0);
	assert_int_equal(want[4].chain_pos, 1);
	assert_int_equal(want[2].time_ns, 1000003);
	assert_int_equal(want[2].pages, 9);
	assert_int_equal(want[2].pause_ns, 21);

	/* A fresh handle reads what the first wrote, every field. */
	again = open_store(f->dir);
	e = list(again, &n);
	assert_int_equal(n, 5);
	assert_entries_equal(e, want, 5);
	verify_files(again, e, n);
	assert_int_equal(leftovers(f->dir, e, n), 0);

	len = 5;
	assert_store(store__chain(e, n, 3, ids, &len, err, sizeof(err)), 0, err);
	assert_int_equal(len, 3);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 2);
	assert_int_equal(ids[2], 3);
	len = 5;
	assert_store(store__chain(e, n, 5, ids, &len, err, sizeof(err)), 0, err);
	assert_int_equal(len, 2);
	assert_int_equal(ids[0], 4);
	assert_int_equal(ids[1], 5);
	len = 5;
	assert_store(store__chain(e, n, 4, ids, &len, err, sizeof(err)), 0, err);
	assert_int_equal(len, 1);
	len = 2;
	assert_store(store__chain(e, n, 3, ids, &len, err, sizeof(err)), KM_ERR_TOO_LARGE, err);
	len = 5;
	assert_store(store__chain(e, n, 9, ids, &len, err, sizeof(err)), -ENOENT, err);
	assert_contains(err, "checkpoint 9");

	assert_ok(store__path(st, 3, path, sizeof(path)));
	assert_contains(path, "/ckpts/ckpt-00000003.kmc");
	assert_err(store__path(st, 0, path, sizeof(path)), KM_ERR_INVALID);
	assert_err(store__path(st, 3, path, 10), KM_ERR_TOO_LARGE);
	free(e);
	store__close(again);
	store__close(st);
}

/* store__chain on tables: broken chains are named. */
static void test_chain_broken(void **state)
{
	static const struct store_entry missing[] = {
		{ .id = 10, .kind = STORE_FULL },
		{ .id = 17, .parent = 15, .kind = STORE_INCR, .chain_pos = 2 },
	};
	static const struct store_entry badpos[] = {
		{ .id = 1, .kind = STORE_FULL },
		{ .id = 2, .parent = 1, .kind = STORE_INCR, .chain_pos = 3 },
	};
	static const struct store_entry loop[] = {
		{ .id = 2, .parent = 3, .kind = STORE_INCR, .chain_pos = 1 },
		{ .id = 3, .parent = 2, .kind = STORE_INCR, .chain_pos = 1 },
	};
	static const struct store_entry unsorted[] = {
		{ .id = 2, .kind = STORE_FULL },
		{ .id = 1, .kind = STORE_FULL },
	};
	char err[ERRLEN] = "";
	uint64_t ids[4];
	size_t len = 4;

	assert_store(store__chain(missing, 2, 17, ids, &len, err, sizeof(err)), KM_ERR_CORRUPT,
		     err);
	assert_contains(err, "checkpoint 17: its parent 15 is missing");
	len = 4;
	assert_store(store__chain(badpos, 2, 2, ids, &len, err, sizeof(err)), KM_ERR_CORRUPT, err);
	assert_contains(err, "checkpoint 2: chain position 3");
	len = 4;
	assert_store(store__chain(loop, 2, 3, ids, &len, err, sizeof(err)), KM_ERR_CORRUPT, err);
	len = 4;
	assert_store(store__chain(unsorted, 2, 1, ids, &len, err, sizeof(err)), KM_ERR_INVALID,
		     err);
	assert_int_equal(len, 0);
}

/* A commit that cannot be listed leaves nothing behind. */
static void test_commit_refused(void **state)
{
	struct fix *f = *state;
	struct store *st = open_store(f->dir);
	struct store_entry e = { .kind = STORE_INCR, .parent = 7 }, *l;
	struct store_pending p = { .fd = -1 };
	char err[ERRLEN] = "";
	size_t n;

	commit(st, STORE_FULL, 0, 1, NULL);

	/* A parent that is not listed: refused in the manifest transaction. */
	assert_ok(store__begin(st, &p, err, sizeof(err)));
	assert_int_equal(write_content(p.fd, 2), 0);
	assert_store(store__commit(st, &p, &e, err, sizeof(err)), KM_ERR_STATE, err);
	assert_contains(err, "its parent 7 is not listed");
	assert_int_equal(p.fd, -1);

	/* A base with a parent: refused before anything is renamed. */
	e = (struct store_entry){ .kind = STORE_FULL, .parent = 1 };
	assert_ok(store__begin(st, &p, err, sizeof(err)));
	assert_store(store__commit(st, &p, &e, err, sizeof(err)), KM_ERR_INVALID, err);

	/* Nothing pending. */
	e = (struct store_entry){ .kind = STORE_FULL };
	assert_store(store__commit(st, &p, &e, err, sizeof(err)), KM_ERR_STATE, err);
	store__abort(st, &p);
	store__abort(st, NULL);

	l = list(st, &n);
	assert_int_equal(n, 1);
	assert_int_equal(leftovers(f->dir, l, n), 0);
	free(l);
	store__close(st);
}

/* ---- ids and gc ----------------------------------------------------------- */

static uint64_t begin_id(struct store *st)
{
	struct store_pending p;
	char err[ERRLEN] = "";
	uint64_t id;

	assert_store(store__begin(st, &p, err, sizeof(err)), 0, err);
	id = p.id;
	store__abort(st, &p);
	return id;
}

static void test_ids_never_reused(void **state)
{
	struct fix *f = *state;
	struct store *st = open_store(f->dir);
	struct store_pending p;
	struct store_entry *e;
	char err[ERRLEN] = "", path[600];
	unsigned int removed;
	uint64_t id;
	size_t n;
	pid_t pid;

	commit(st, STORE_FULL, 0, 1, NULL);
	commit(st, STORE_INCR, 1, 2, NULL);

	/* A writer that died after begin: its temp file (id 3) holds its id. */
	if ((pid = fork_child()) == 0) {
		struct store *cs;

		if (store__open(f->dir, false, &cs, err, sizeof(err)) != 0 ||
		    store__begin(cs, &p, err, sizeof(err)) != 0 || write_content(p.fd, 3) != 0)
			_exit(1);
		_exit(p.id == 3 ? 0 : 2);
	}
	assert_int_equal(wait_child(pid), 0);
	assert_int_equal(begin_id(st), 4);

	/* A crash between rename and manifest: an unlisted file (id 7) holds its id. */
	path_in(path, sizeof(path), f->dir, "ckpt-00000007.kmc");
	write_file(path, "half a checkpoint", 17);
	assert_int_equal(begin_id(st), 8);

	/* A live writer's temp file survives gc; the dead writer's and the unlisted file go. */
	assert_ok(store__begin(st, &p, err, sizeof(err)));
	assert_int_equal(p.id, 8);
	path_in(path, sizeof(path), f->dir, "manifest.tmp");
	write_file(path, "a dead transaction", 18);
	path_in(path, sizeof(path), f->dir, "notes.txt");
	write_file(path, "not the store's", 15);
	assert_store(store__gc(st, &removed, err, sizeof(err)), 0, err);
	assert_int_equal(removed, 3);
	path_in(path, sizeof(path), f->dir, p.tmp);
	assert_int_equal(access(path, F_OK), 0);
	store__abort(st, &p);
	assert_int_equal(access(path, F_OK), -1);
	path_in(path, sizeof(path), f->dir, "notes.txt");
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(unlink(path), 0);

	/* gc reserved the ids it removed files of; the aborted 8 may come again. */
	e = list(st, &n);
	assert_int_equal(n, 2);
	verify_files(st, e, n);
	assert_int_equal(leftovers(f->dir, e, n), 0);
	free(e);
	id = commit(st, STORE_INCR, 2, 8, NULL);
	assert_int_equal(id, 8);

	/* A listed then removed id never comes back either. */
	assert_store(store__remove(st, &id, 1, err, sizeof(err)), 0, err);
	assert_int_equal(begin_id(st), 9);
	assert_store(store__gc(st, &removed, err, sizeof(err)), 0, err);
	assert_int_equal(removed, 0);
	store__close(st);
}

/*
 * A commit between its rename and its manifest entry: the file is unlisted
 * under its final name, but its writer's lock (on the open file, which the
 * rename does not change) tells gc to leave it.
 */
static void test_gc_spares_live_commit(void **state)
{
	struct fix *f = *state;
	struct store *st = open_store(f->dir);
	struct store_pending p;
	char err[ERRLEN] = "", from[400], to[400];
	unsigned int removed;

	commit(st, STORE_FULL, 0, 1, NULL);
	assert_ok(store__begin(st, &p, err, sizeof(err)));
	assert_int_equal(write_content(p.fd, 2), 0);
	path_in(from, sizeof(from), f->dir, p.tmp);
	path_in(to, sizeof(to), f->dir, "ckpt-00000002.kmc");
	assert_int_equal(rename(from, to), 0);
	assert_store(store__gc(st, &removed, err, sizeof(err)), 0, err);
	assert_int_equal(removed, 0);
	assert_int_equal(access(to, F_OK), 0);
	/* Its writer gone, the same file is garbage. */
	close(p.fd);
	assert_store(store__gc(st, &removed, err, sizeof(err)), 0, err);
	assert_int_equal(removed, 1);
	assert_int_equal(access(to, F_OK), -1);
	assert_int_equal(begin_id(st), 3);
	store__close(st);
}

/* ---- remove --------------------------------------------------------------- */

static void test_remove(void **state)
{
	struct fix *f = *state;
	struct store *st = open_store(f->dir);
	struct store_entry *e;
	char err[ERRLEN] = "";
	uint64_t ids[3];
	size_t n;

	commit(st, STORE_FULL, 0, 1, NULL);
	commit(st, STORE_INCR, 1, 2, NULL);
	commit(st, STORE_INCR, 2, 3, NULL);
	commit(st, STORE_FULL, 0, 4, NULL);

	/* A checkpoint that stays may not lose its parent. */
	ids[0] = 2;
	assert_store(store__remove(st, ids, 1, err, sizeof(err)), KM_ERR_STATE, err);
	assert_contains(err, "checkpoint 3 depends on 2");
	/* All or nothing. */
	ids[0] = 4;
	ids[1] = 99;
	assert_store(store__remove(st, ids, 2, err, sizeof(err)), -ENOENT, err);
	assert_contains(err, "checkpoint 99 is not listed");
	e = list(st, &n);
	assert_int_equal(n, 4);
	free(e);

	ids[0] = 3;
	ids[1] = 2;
	ids[2] = 3;
	assert_store(store__remove(st, ids, 3, err, sizeof(err)), 0, err);
	e = list(st, &n);
	assert_int_equal(n, 2);
	assert_int_equal(e[0].id, 1);
	assert_int_equal(e[1].id, 4);
	assert_int_equal(leftovers(f->dir, e, n), 0);
	free(e);
	store__close(st);
}

/* ---- compaction ----------------------------------------------------------- */

static int try_replace(struct store *st, const uint64_t *drop, size_t ndrop, uint64_t time_ns,
		       struct store_entry *out, char *err)
{
	struct store_entry e = { .kind = STORE_FULL, .time_ns = time_ns, .pages = 100 };
	struct store_pending p;
	int r;

	if ((r = store__begin(st, &p, err, ERRLEN)) != 0)
		return r;
	if (write_content(p.fd, 100 + time_ns) != 0) {
		store__abort(st, &p);
		return -EIO;
	}
	r = store__commit_replacing(st, &p, &e, drop, ndrop, err, ERRLEN);
	if (out)
		*out = e;
	return r;
}

static void test_compaction(void **state)
{
	struct fix *f = *state;
	struct store *st = open_store(f->dir);
	struct store_entry base, *e;
	uint64_t drop[3] = { 2, 1, 3 }, ids[8];
	char err[ERRLEN] = "";
	size_t n, len = 8;

	commit(st, STORE_FULL, 0, 1, NULL);
	commit(st, STORE_INCR, 1, 2, NULL);
	commit(st, STORE_INCR, 2, 3, NULL);
	commit(st, STORE_INCR, 3, 4, NULL);
	commit(st, STORE_INCR, 4, 5, NULL);

	/* 1-2-3 become base 6, standing for 3: 4 moves onto it. */
	assert_store(try_replace(st, drop, 3, 1000003, &base, err), 0, err);
	assert_int_equal(base.id, 6);
	assert_int_equal(base.chain_pos, 0);
	e = list(st, &n);
	assert_int_equal(n, 3);
	assert_int_equal(e[0].id, 4);
	assert_int_equal(e[0].parent, 6);
	assert_int_equal(e[0].chain_pos, 1);
	assert_int_equal(e[1].id, 5);
	assert_int_equal(e[1].parent, 4);
	assert_int_equal(e[1].chain_pos, 2);
	assert_int_equal(e[2].id, 6);
	assert_store(store__chain(e, n, 5, ids, &len, err, sizeof(err)), 0, err);
	assert_int_equal(len, 3);
	assert_int_equal(ids[0], 6);
	assert_int_equal(ids[1], 4);
	assert_int_equal(ids[2], 5);
	verify_files(st, e, n);
	assert_int_equal(leftovers(f->dir, e, n), 0);
	free(e);

	/* Not a chain: 6 and 5 without 4. */
	drop[0] = 6;
	drop[1] = 5;
	assert_store(try_replace(st, drop, 2, 9, NULL, err), KM_ERR_INVALID, err);
	/* A branch off the dropped chain's middle (7 on 6) may not lose its parent. */
	commit(st, STORE_INCR, 6, 7, NULL);
	drop[0] = 6;
	drop[1] = 4;
	assert_store(try_replace(st, drop, 2, 9, NULL, err), KM_ERR_STATE, err);
	assert_contains(err, "checkpoint 7 depends on 6");
	e = list(st, &n);
	assert_int_equal(n, 4);
	assert_int_equal(leftovers(f->dir, e, n), 0);
	free(e);
	store__close(st);
}

/* ---- failures while committing -------------------------------------------- */

static void test_write_errors_remove_temp(void **state)
{
	struct fix *f = *state;
	struct store *st = open_store(f->dir);
	struct store_entry e = { .kind = STORE_FULL }, *l;
	struct store_pending p;
	char err[ERRLEN] = "";
	size_t n;
	int full;

	commit(st, STORE_FULL, 0, 1, NULL);

	/* The writer's fd is gone (closed by mistake): the commit fails, cleanly. */
	assert_ok(store__begin(st, &p, err, sizeof(err)));
	assert_int_equal(write_content(p.fd, 2), 0);
	close(p.fd);
	assert_true(store__commit(st, &p, &e, err, sizeof(err)) < 0);
	assert_contains(err, "checkpoint 2");
	assert_int_equal(p.fd, -1);

	/* The writer meets a full disk (/dev/full in its place) and aborts. */
	if ((full = open("/dev/full", O_WRONLY | O_CLOEXEC)) >= 0) {
		assert_ok(store__begin(st, &p, err, sizeof(err)));
		assert_int_equal(dup2(full, p.fd), p.fd);
		assert_int_equal(write_content(p.fd, 3), -1);
		store__abort(st, &p);
		close(full);
	}

#ifdef KM_FAULT_INJECTION
	/* The fsync reports ENOSPC: the message says so, as a user reads it. */
	setenv("KVM_MIGRATE_FAULT", "store-fsync-enospc", 1);
	assert_ok(store__begin(st, &p, err, sizeof(err)));
	assert_int_equal(write_content(p.fd, 4), 0);
	e = (struct store_entry){ .kind = STORE_FULL };
	assert_store(store__commit(st, &p, &e, err, sizeof(err)), -ENOSPC, err);
	unsetenv("KVM_MIGRATE_FAULT");
	assert_contains(err, "ckpts: no space left while writing checkpoint");
#endif
	l = list(st, &n);
	assert_int_equal(n, 1);
	assert_int_equal(leftovers(f->dir, l, n), 0);
	free(l);
	/* And the store goes on. */
	commit(st, STORE_INCR, 1, 5, NULL);
	store__close(st);
}

/* ---- crashes -------------------------------------------------------------- */

#ifdef KM_FAULT_INJECTION
/* In a child: opens dir and commits one checkpoint; the exit status says how it went. */
static void child_commit(const char *dir, uint64_t kind, uint64_t parent, uint64_t seed)
{
	char err[ERRLEN];
	struct store *st;
	int r;

	if (store__open(dir, false, &st, err, sizeof(err)) != 0)
		_exit(10);
	r = try_commit(st, kind, parent, seed, NULL, err);
	store__close(st);
	_exit(r == 0 ? 0 : 11);
}

/* A copy of the flat directory from at to (made 0700): a store without its fsyncs. */
static void copy_dir(const char *from, const char *to)
{
	char src[600], dst[600];
	struct dirent *de;
	uint8_t *data;
	DIR *d = opendir(from);
	size_t len;

	assert_non_null(d);
	assert_int_equal(mkdir(to, 0700), 0);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
			continue;
		path_in(src, sizeof(src), from, de->d_name);
		path_in(dst, sizeof(dst), to, de->d_name);
		data = read_file(src, &len);
		write_file(dst, data, len);
		free(data);
	}
	closedir(d);
}

/* The crash points of a commit, and whether the checkpoint is listed after each. */
static const struct {
	const char *name;
	bool listed;
} commit_points[] = {
	{ "after-tmp-write", false },
	{ "after-fsync", false },
	{ "after-rename", false },
	{ "after-dir-fsync", false },
	{ "mid-manifest-write", false },
	{ "after-manifest-write", false },
	{ "after-manifest-rename", true },
	{ "after-manifest-fsync", true },
};
/* Of a removal of two checkpoints, and whether they are delisted after each. */
static const struct {
	const char *name;
	bool gone;
} remove_points[] = {
	{ "mid-manifest-write", false },
	{ "after-manifest-write", false },
	{ "after-manifest-rename", true },
	{ "after-manifest-fsync", true },
	{ "mid-remove", true },
	{ "after-remove", true },
};

/* The test's tables name every crash point the store has: a new one is tested too. */
static void assert_points_covered(void)
{
	size_t i, k;
	bool found;

	for (i = 0; store__crash_points[i] != NULL; i++) {
		found = false;
		for (k = 0; k < sizeof(commit_points) / sizeof(commit_points[0]); k++)
			found |= !strcmp(commit_points[k].name, store__crash_points[i]);
		for (k = 0; k < sizeof(remove_points) / sizeof(remove_points[0]); k++)
			found |= !strcmp(remove_points[k].name, store__crash_points[i]);
		if (!found)
			fail_msg("crash point %s is not tested", store__crash_points[i]);
	}
}

static void assert_killed(int status, const char *point)
{
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail_msg("crash point %s: the child %s %d instead of dying by SIGKILL", point,
			 WIFEXITED(status) ? "exited with" : "died of signal",
			 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/* After a crash: gc leaves exactly the listed files, and the next commit takes next_id. */
static void assert_recovers(struct fix *f, const char *dir, uint64_t next_id, const char *point)
{
	struct store *st = open_store(dir);
	struct store_entry *e;
	char err[ERRLEN] = "";
	unsigned int removed;
	size_t n;

	assert_store(store__gc(st, &removed, err, sizeof(err)), 0, err);
	e = list(st, &n);
	verify_files(st, e, n);
	if (leftovers(dir, e, n) != 0)
		fail_msg("crash point %s: gc left files behind", point);
	free(e);
	if (commit(st, STORE_FULL, 0, 50, NULL) != next_id)
		fail_msg("crash point %s: the next commit did not get id %" PRIu64, point,
			 next_id);
	store__close(st);
}
#endif

static void test_crash_during_commit(void **state)
{
#ifdef KM_FAULT_INJECTION
	struct fix *f = *state;
	struct store_entry before[2], *e;
	struct store *st;
	char dir[400];
	size_t i, n;
	pid_t pid;

	assert_points_covered();
	st = open_store(f->dir);
	commit(st, STORE_FULL, 0, 1, &before[0]);
	commit(st, STORE_INCR, 1, 2, &before[1]);
	store__close(st);
	for (i = 0; i < sizeof(commit_points) / sizeof(commit_points[0]); i++) {
		snprintf(dir, sizeof(dir), "%s/commit-%zu", f->tmp, i);
		copy_dir(f->dir, dir);
		st = open_store(dir);
		if ((pid = fork_child()) == 0) {
			setenv("KVM_MIGRATE_STORE_CRASH", commit_points[i].name, 1);
			child_commit(dir, STORE_INCR, 2, 3);
		}
		assert_killed(wait_child(pid), commit_points[i].name);

		e = list(st, &n);
		if (n != (commit_points[i].listed ? 3u : 2u))
			fail_msg("crash point %s: %zu listed", commit_points[i].name, n);
		assert_entries_equal(e, before, 2);
		if (n == 3)
			assert_int_equal(e[2].id, 3);
		verify_files(st, e, n);
		free(e);
		store__close(st);
		assert_recovers(f, dir, 4, commit_points[i].name);
	}
#else
	print_message("# built without --enable-fault-injection: no crash points\n");
	skip();
#endif
}

static void test_crash_during_remove(void **state)
{
#ifdef KM_FAULT_INJECTION
	struct fix *f = *state;
	struct store_entry before[5], *e;
	static const uint64_t drop[] = { 4, 5 };
	struct store *st;
	char dir[400], err[ERRLEN];
	size_t i, n;
	pid_t pid;

	st = open_store(f->dir);
	commit(st, STORE_FULL, 0, 1, &before[0]);
	commit(st, STORE_INCR, 1, 2, &before[1]);
	commit(st, STORE_FULL, 0, 3, &before[2]);
	commit(st, STORE_INCR, 3, 4, &before[3]);
	commit(st, STORE_INCR, 4, 5, &before[4]);
	store__close(st);
	for (i = 0; i < sizeof(remove_points) / sizeof(remove_points[0]); i++) {
		snprintf(dir, sizeof(dir), "%s/remove-%zu", f->tmp, i);
		copy_dir(f->dir, dir);
		st = open_store(dir);
		if ((pid = fork_child()) == 0) {
			struct store *cs;

			setenv("KVM_MIGRATE_STORE_CRASH", remove_points[i].name, 1);
			if (store__open(dir, false, &cs, err, sizeof(err)) != 0)
				_exit(10);
			_exit(store__remove(cs, drop, 2, err, sizeof(err)) == 0 ? 0 : 11);
		}
		assert_killed(wait_child(pid), remove_points[i].name);

		e = list(st, &n);
		if (n != (remove_points[i].gone ? 3u : 5u))
			fail_msg("crash point %s: %zu listed", remove_points[i].name, n);
		assert_entries_equal(e, before, n);
		verify_files(st, e, n);
		free(e);
		store__close(st);
		assert_recovers(f, dir, 6, remove_points[i].name);
	}
#else
	print_message("# built without --enable-fault-injection: no crash points\n");
	skip();
#endif
}

/* ---- two writers ---------------------------------------------------------- */

static void test_concurrent_commits(void **state)
{
	enum { PER_CHILD = 20 };
	struct fix *f = *state;
	struct store *st = open_store(f->dir);
	struct store_entry *e;
	int go[2], k, status;
	char err[ERRLEN] = "";
	uint64_t ids[2 * PER_CHILD];
	pid_t pid[2];
	size_t n, i, len;
	char c;

	assert_int_equal(pipe(go), 0);
	for (k = 0; k < 2; k++) {
		if ((pid[k] = fork_child()) == 0) {
			struct store_entry me;
			struct store *cs;
			uint64_t parent = 0;
			int j;

			close(go[1]);
			/* Both start when the parent closes the pipe: as close together as can be. */
			if (read(go[0], &c, 1) != 0)
				_exit(9);
			if (store__open(f->dir, false, &cs, err, sizeof(err)) != 0)
				_exit(10);
			/* Each child a chain of its own, interleaved with the other's. */
			for (j = 0; j < PER_CHILD; j++) {
				if (try_commit(cs, parent ? STORE_INCR : STORE_FULL, parent,
					       (uint64_t)(k * 100 + j), &me, err) != 0) {
					fprintf(stderr, "# child %d: %s\n", k, err);
					_exit(11);
				}
				parent = me.id;
			}
			store__close(cs);
			_exit(0);
		}
	}
	close(go[0]);
	close(go[1]);
	for (k = 0; k < 2; k++) {
		status = wait_child(pid[k]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("child %d: status %#x", k, status);
	}
	e = list(st, &n);
	assert_int_equal(n, 2 * PER_CHILD);
	/* store__list gives ascending ids: distinct; every chain resolves. */
	for (i = 0; i < n; i++) {
		if (i > 0)
			assert_true(e[i - 1].id < e[i].id);
		len = n;
		assert_store(store__chain(e, n, e[i].id, ids, &len, err, sizeof(err)), 0, err);
		assert_int_equal(len, e[i].chain_pos + 1);
	}
	verify_files(st, e, n);
	assert_int_equal(leftovers(f->dir, e, n), 0);
	free(e);
	store__close(st);
}

/* ---- damaged manifests ---------------------------------------------------- */

static void test_manifest_flips_and_cuts(void **state)
{
	struct fix *f = *state;
	struct store *st = open_store(f->dir);
	struct store_entry *e;
	char err[ERRLEN] = "", path[400];
	uint8_t *good, *bad, flip;
	unsigned int removed;
	size_t len, i, n;
	int fd, r;

	commit(st, STORE_FULL, 0, 1, NULL);
	commit(st, STORE_INCR, 1, 2, NULL);
	commit(st, STORE_INCR, 2, 3, NULL);
	path_in(path, sizeof(path), f->dir, "manifest");
	good = read_file(path, &len);
	bad = malloc(len + 16);
	assert_non_null(bad);

	/*
	 * Every byte flipped (in place, and back: this runs in slow emulators
	 * too): damaged, and the message names the file and a record.
	 */
	fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	for (i = 0; i < len; i++) {
		flip = good[i] ^ 0x5a;
		assert_int_equal(pwrite(fd, &flip, 1, (off_t)i), 1);
		err[0] = 0;
		r = store__list(st, &e, &n, err, sizeof(err));
		if (r != KM_ERR_CORRUPT)
			fail_msg("byte %zu flipped: got %d (%s): %s", i, r, km_strerror(r), err);
		assert_contains(err, "ckpts/manifest: damaged");
		assert_contains(err, "record");
		assert_null(e);
		assert_int_equal(pwrite(fd, &good[i], 1, (off_t)i), 1);
	}
	/* Every cut, from all but the last byte down to nothing. */
	for (i = len; i-- > 0;) {
		assert_int_equal(ftruncate(fd, (off_t)i), 0);
		r = store__list(st, &e, &n, err, sizeof(err));
		if (r != KM_ERR_CORRUPT)
			fail_msg("cut to %zu bytes: got %d (%s): %s", i, r, km_strerror(r), err);
	}
	close(fd);
	/* Bytes after the end record. */
	memcpy(bad, good, len);
	memcpy(bad + len, "trailing", 8);
	write_file(path, bad, len + 8);
	assert_store(store__list(st, &e, &n, err, sizeof(err)), KM_ERR_CORRUPT, err);
	assert_contains(err, "after the end record");

	/* Nothing writes over a damaged manifest, and gc deletes nothing by it. */
	assert_store(store__gc(st, &removed, err, sizeof(err)), KM_ERR_CORRUPT, err);
	assert_int_equal(removed, 0);
	assert_store(try_commit(st, STORE_FULL, 0, 9, NULL, err), KM_ERR_CORRUPT, err);

	write_file(path, good, len);
	e = list(st, &n);
	assert_int_equal(n, 3);
	verify_files(st, e, n);
	free(e);
	free(bad);
	free(good);
	store__close(st);
}

/* A manifest as another version would write it: header fields given, entries as given. */
static void write_manifest(const char *path, const char *magic, uint64_t major, uint64_t minor,
			   uint32_t entry_type, bool extra_field)
{
	struct buf *b = buf_new(4096), *pl = buf_new(1024);

	assert_ok(buf_put(pl, magic, 8));
	assert_ok(rec_put_field_u64(pl, STORE_HDR_MAJOR, major));
	assert_ok(rec_put_field_u64(pl, STORE_HDR_MINOR, minor));
	assert_ok(rec_put(b, REC_HEADER, buf_ptr(pl), (uint32_t)buf_len(pl)));
	buf_reset(pl);
	assert_ok(rec_put_field_u64(pl, STORE_E_ID, 1));
	if (extra_field)
		assert_ok(rec_put_field(pl, 200, "from the future", 15));
	assert_ok(rec_put_field_u64(pl, STORE_E_PARENT, 0));
	assert_ok(rec_put_field_u64(pl, STORE_E_KIND, STORE_FULL));
	assert_ok(rec_put_field_u64(pl, STORE_E_TIME_NS, 5));
	assert_ok(rec_put_field_u64(pl, STORE_E_PAGES, 6));
	assert_ok(rec_put_field_u64(pl, STORE_E_BYTES, 7));
	assert_ok(rec_put_field_u64(pl, STORE_E_PAUSE_NS, 8));
	assert_ok(rec_put_field_u64(pl, STORE_E_HASH, 9));
	assert_ok(rec_put_field_u64(pl, STORE_E_CHAIN_POS, 0));
	assert_ok(rec_put(b, entry_type, buf_ptr(pl), (uint32_t)buf_len(pl)));
	assert_ok(rec_put(b, REC_END, NULL, 0));
	write_file(path, buf_ptr(b), buf_len(b));
	buf_free(pl);
	buf_free(b);
}

static void test_manifest_versions(void **state)
{
	struct fix *f = *state;
	struct store *st = open_store(f->dir);
	struct store_entry *e;
	char err[ERRLEN] = "", path[400];
	size_t n;
	int fd;

	path_in(path, sizeof(path), f->dir, "manifest");

	/* A newer major version, whose records this version would not know anyway. */
	write_manifest(path, STORE_MAGIC, 2, 0, 99, false);
	assert_store(store__list(st, &e, &n, err, sizeof(err)), KM_ERR_VERSION, err);
	assert_contains(err, "ckpts/manifest: written by a newer kvm-migrate (format 2)");

	/* A newer minor version: its unknown fields are skipped. */
	write_manifest(path, STORE_MAGIC, 1, 7, STORE_REC_ENTRY, true);
	e = list(st, &n);
	assert_int_equal(n, 1);
	assert_int_equal(e[0].id, 1);
	assert_int_equal(e[0].hash, 9);
	assert_int_equal(e[0].pause_ns, 8);
	free(e);
	/* An id above a header without a next id is still never given again. */
	assert_int_equal(begin_id(st), 2);

	/* Another file altogether, an unknown record type, a version 0. */
	write_manifest(path, REC_MAGIC, 1, 0, STORE_REC_ENTRY, false);
	assert_store(store__list(st, &e, &n, err, sizeof(err)), KM_ERR_BAD_MAGIC, err);
	write_manifest(path, STORE_MAGIC, 1, 0, 99, false);
	assert_store(store__list(st, &e, &n, err, sizeof(err)), KM_ERR_CORRUPT, err);
	assert_contains(err, "record 1: unknown record type 99");
	write_manifest(path, STORE_MAGIC, 0, 0, STORE_REC_ENTRY, false);
	assert_store(store__list(st, &e, &n, err, sizeof(err)), KM_ERR_CORRUPT, err);

	/* Past the cap: refused from its size, before a byte is read. */
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)STORE_MANIFEST_MAX + 1), 0);
	close(fd);
	assert_store(store__list(st, &e, &n, err, sizeof(err)), KM_ERR_TOO_LARGE, err);
	assert_contains(err, "ckpts/manifest");
	store__close(st);
}

/* ---- permissions and opening ---------------------------------------------- */

static void test_open_refusals(void **state)
{
	struct fix *f = *state;
	struct store *st = NULL;
	char err[ERRLEN] = "", path[400], link[400];

	/* Missing, and not asked to create. */
	assert_store(store__open(f->dir, false, &st, err, sizeof(err)), -ENOENT, err);
	assert_null(st);
	/* A directory that is not a store. */
	assert_int_equal(mkdir(f->dir, 0700), 0);
	assert_store(store__open(f->dir, false, &st, err, sizeof(err)), -ENOENT, err);
	assert_contains(err, "not a checkpoint store");

	/* Writable by others, or by the group. */
	assert_int_equal(chmod(f->dir, 0777), 0);
	assert_store(store__open(f->dir, true, &st, err, sizeof(err)), KM_ERR_STATE, err);
	assert_contains(err, f->dir);
	assert_contains(err, "writable by group or others");
	assert_int_equal(chmod(f->dir, 0770), 0);
	assert_store(store__open(f->dir, true, &st, err, sizeof(err)), KM_ERR_STATE, err);
	assert_int_equal(chmod(f->dir, 0700), 0);

	st = open_store(f->dir);
	commit(st, STORE_FULL, 0, 1, NULL);
	store__close(st);

	/* A file of the store writable by others: named. */
	path_in(path, sizeof(path), f->dir, "manifest");
	assert_int_equal(chmod(path, 0606), 0);
	assert_store(store__open(f->dir, false, &st, err, sizeof(err)), KM_ERR_STATE, err);
	assert_contains(err, "ckpts/manifest: writable by group or others");
	assert_int_equal(chmod(path, 0600), 0);
	path_in(path, sizeof(path), f->dir, "ckpt-00000001.kmc");
	assert_int_equal(chmod(path, 0620), 0);
	assert_store(store__open(f->dir, false, &st, err, sizeof(err)), KM_ERR_STATE, err);
	assert_contains(err, "ckpts/ckpt-00000001.kmc");
	assert_int_equal(chmod(path, 0600), 0);

	/* A symlink to a store is not the store. */
	path_in(link, sizeof(link), f->tmp, "link");
	assert_int_equal(symlink(f->dir, link), 0);
	assert_store(store__open(link, false, &st, err, sizeof(err)), -ELOOP, err);
	assert_contains(err, "link");

	/* Owned by another user (only root can make one). */
	if (geteuid() == 0) {
		assert_int_equal(chown(f->dir, 65534, 65534), 0);
		assert_store(store__open(f->dir, false, &st, err, sizeof(err)), KM_ERR_AUTH, err);
		assert_contains(err, "owned by uid 65534");
		assert_int_equal(chown(f->dir, 0, 0), 0);
	}

	/* Checkpoint files without a manifest: not disowned by a fresh empty one. */
	path_in(path, sizeof(path), f->dir, "manifest");
	assert_int_equal(unlink(path), 0);
	assert_store(store__open(f->dir, true, &st, err, sizeof(err)), -ENOENT, err);
	assert_contains(err, "no manifest");
	assert_null(st);
}

/* ---- retention ------------------------------------------------------------ */

struct pcase {
	const char *what;
	unsigned int keep;
	size_t n;
	struct {
		uint64_t id, parent, time;
	} e[10];
	size_t ndel;
	uint64_t del[10];
};

static const struct pcase prune_cases[] = {
	{ "empty", 3, 0, { { 0 } }, 0, { 0 } },
	{ "one base, keep 0", 0, 1, { { 1, 0, 10 } }, 1, { 1 } },
	{ "one base, keep 1", 1, 1, { { 1, 0, 10 } }, 0, { 0 } },
	{ "a chain, keep 1: all of it is needed", 1, 4,
	  { { 1, 0, 10 }, { 2, 1, 20 }, { 3, 2, 30 }, { 4, 3, 40 } }, 0, { 0 } },
	{ "a chain, keep 0", 0, 4,
	  { { 1, 0, 10 }, { 2, 1, 20 }, { 3, 2, 30 }, { 4, 3, 40 } }, 4, { 1, 2, 3, 4 } },
	{ "two chains, keep 1", 1, 5,
	  { { 1, 0, 10 }, { 2, 1, 20 }, { 3, 2, 30 }, { 4, 0, 40 }, { 5, 4, 50 } },
	  3, { 1, 2, 3 } },
	{ "two chains, keep 2", 2, 5,
	  { { 1, 0, 10 }, { 2, 1, 20 }, { 3, 2, 30 }, { 4, 0, 40 }, { 5, 4, 50 } },
	  3, { 1, 2, 3 } },
	{ "keep 3 reaches the older chain's top: its base stays", 3, 5,
	  { { 1, 0, 10 }, { 2, 1, 20 }, { 3, 2, 30 }, { 4, 0, 40 }, { 5, 4, 50 } },
	  0, { 0 } },
	{ "bases only, keep 2", 2, 4,
	  { { 1, 0, 10 }, { 2, 0, 20 }, { 3, 0, 30 }, { 4, 0, 40 } }, 2, { 1, 2 } },
	{ "keep more than there are", 10, 2, { { 1, 0, 10 }, { 2, 1, 20 } }, 0, { 0 } },
	{ "branches off one base, keep 1", 1, 3,
	  { { 1, 0, 10 }, { 2, 1, 20 }, { 3, 1, 30 } }, 1, { 2 } },
	{ "a compacted base is as old as the state it stands for", 1, 4,
	  { { 4, 6, 40 }, { 5, 4, 50 }, { 6, 0, 30 }, { 7, 0, 60 } }, 3, { 4, 5, 6 } },
	{ "keep 2 after compaction keeps the re-parented chain", 2, 4,
	  { { 4, 6, 40 }, { 5, 4, 50 }, { 6, 0, 30 }, { 7, 0, 60 } }, 0, { 0 } },
	{ "a long chain and a new one, keep 2", 2, 7,
	  { { 1, 0, 10 }, { 2, 1, 20 }, { 3, 2, 30 }, { 4, 3, 40 }, { 5, 4, 50 },
	    { 6, 0, 60 }, { 7, 6, 70 } }, 5, { 1, 2, 3, 4, 5 } },
	{ "a long chain and a new one, keep 3 reaches the middle", 3, 7,
	  { { 1, 0, 10 }, { 2, 1, 20 }, { 3, 2, 30 }, { 4, 3, 40 }, { 5, 4, 50 },
	    { 6, 0, 60 }, { 7, 6, 70 } }, 0, { 0 } },
	{ "same times: the higher id is newer", 1, 3,
	  { { 1, 0, 10 }, { 2, 0, 10 }, { 3, 0, 10 } }, 2, { 1, 2 } },
	{ "a missing parent: keeps what is there", 1, 2, { { 3, 2, 30 }, { 4, 0, 20 } },
	  1, { 4 } },
};

static void make_entries(const struct pcase *c, struct store_entry *e)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		e[i] = (struct store_entry){
			.id = c->e[i].id, .parent = c->e[i].parent, .time_ns = c->e[i].time,
			.kind = c->e[i].parent ? STORE_INCR : STORE_FULL,
		};
}

/*
 * What any plan must be: ascending, no deleted id is an ancestor of a kept
 * one, every kept one is among the newest keep or an ancestor of one.
 */
static void check_plan(const struct store_entry *e, size_t n, unsigned int keep,
		       const uint64_t *del, size_t ndel, const char *what)
{
	bool *gone = calloc(n + 1, 1), *needed = calloc(n + 1, 1);
	size_t i, j, k, newer;

	assert_non_null(gone);
	assert_non_null(needed);
	for (i = 0; i < ndel; i++) {
		if (i > 0 && del[i - 1] >= del[i])
			fail_msg("%s: deletions out of order", what);
		for (j = 0; j < n; j++)
			if (e[j].id == del[i])
				gone[j] = true;
	}
	for (i = 0; i < n; i++) {
		for (newer = 0, j = 0; j < n; j++)
			newer += e[j].time_ns > e[i].time_ns ||
				 (e[j].time_ns == e[i].time_ns && e[j].id > e[i].id);
		if (newer >= keep)
			continue;
		if (gone[i])
			fail_msg("%s: deletes %" PRIu64 ", one of the newest %u", what, e[i].id,
				 keep);
		/* It and its ancestors are needed. */
		for (k = i; !needed[k];) {
			needed[k] = true;
			for (j = 0; j < n && (e[k].parent == 0 || e[j].id != e[k].parent); j++)
				;
			if (j == n)
				break;
			if (gone[j])
				fail_msg("%s: deletes %" PRIu64 ", which kept %" PRIu64 " needs",
					 what, e[j].id, e[k].id);
			k = j;
		}
	}
	for (i = 0; i < n; i++)
		if (!gone[i] && !needed[i])
			fail_msg("%s: keeps %" PRIu64 ", which nothing kept needs", what, e[i].id);
	free(gone);
	free(needed);
}

static void test_prune_plan_table(void **state)
{
	struct store_entry e[10];
	uint64_t del[10];
	size_t i, k, ndel;

	for (i = 0; i < sizeof(prune_cases) / sizeof(prune_cases[0]); i++) {
		const struct pcase *c = &prune_cases[i];

		make_entries(c, e);
		assert_ok(store__prune_plan(e, c->n, c->keep, del, &ndel));
		if (ndel != c->ndel || memcmp(del, c->del, ndel * sizeof(del[0])) != 0) {
			char got[200] = "", want[200] = "";

			for (k = 0; k < ndel; k++)
				snprintf(got + strlen(got), sizeof(got) - strlen(got), " %" PRIu64,
					 del[k]);
			for (k = 0; k < c->ndel; k++)
				snprintf(want + strlen(want), sizeof(want) - strlen(want),
					 " %" PRIu64, c->del[k]);
			fail_msg("%s: deletes {%s }, want {%s }", c->what, got, want);
		}
		check_plan(e, c->n, c->keep, del, ndel, c->what);
	}
	/* Not in id order: refused, since a parent might not be found. */
	e[0] = (struct store_entry){ .id = 2, .kind = STORE_FULL };
	e[1] = (struct store_entry){ .id = 1, .kind = STORE_FULL };
	assert_err(store__prune_plan(e, 2, 1, del, &ndel), KM_ERR_INVALID);
}

/* Random forests (fixed seed): every plan has the properties check_plan() demands. */
static void test_prune_plan_random(void **state)
{
	struct store_entry e[24];
	uint64_t del[24];
	unsigned int seed = 12345, keep, round;
	size_t n, i, ndel;
	char what[64];

	for (round = 0; round < 300; round++) {
		n = (size_t)(rand_r(&seed) % 24) + 1;
		for (i = 0; i < n; i++) {
			e[i] = (struct store_entry){ .id = i * 2 + 1, .kind = STORE_FULL,
						     .time_ns = (uint64_t)(rand_r(&seed) % 8) };
			if (i > 0 && rand_r(&seed) % 4 != 0) {
				e[i].kind = STORE_INCR;
				e[i].parent = e[rand_r(&seed) % i].id;
			}
		}
		keep = (unsigned int)(rand_r(&seed) % (n + 2));
		snprintf(what, sizeof(what), "round %u (n %zu keep %u)", round, n, keep);
		assert_ok(store__prune_plan(e, n, keep, del, &ndel));
		check_plan(e, n, keep, del, ndel, what);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commit_list_chain, setup, teardown),
		cmocka_unit_test(test_chain_broken),
		cmocka_unit_test_setup_teardown(test_commit_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_never_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_spares_live_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_errors_remove_temp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_during_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_during_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_commits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_flips_and_cuts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_refusals, setup, teardown),
		cmocka_unit_test(test_prune_plan_table),
		cmocka_unit_test(test_prune_plan_random),
	};

	/* Keep TAP lines (stdout) in order with failure messages (stderr). */
	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
