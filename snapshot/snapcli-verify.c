/*
 * kvm-snapshot verify DIR[@ID] (docs/kvm-snapshot.1): every listed file
 * (or those ID's chain needs) against the manifest and through all its
 * records, then which checkpoints still restore, then what a crash left.
 *
 * Verify runs beside a live VM that checkpoints into DIR: a file listed
 * when the manifest was read may be removed by retention before it is
 * opened. Such a file is listed again before it is called missing.
 */
#define _GNU_SOURCE
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "snapshot/snapcli.h"

enum vstatus { V_OK, V_DAMAGED, V_MISSING, V_GONE };

static const char *const vstatus_name[] = { "ok", "damaged", "missing", "removed" };

/* One listed checkpoint as verify saw it. */
struct vcheck {
	const struct store_entry *e;
	bool selected;		/* checked (all, or ID's chain) */
	enum vstatus st;
	uint64_t record;	/* where the damage is; UINT64_MAX: not one record's */
	bool size_ok, hash_ok;
	bool restorable;
	char *path;		/* malloc'd, as store__path() gives it */
	char *why;		/* malloc'd: the damage, naming the file */
	char chain_why[400];	/* why it does not restore */
};

struct verify {
	struct store *st;
	const char *dir;
	struct store_entry *e;
	size_t n;
	struct vcheck *v;	/* v[i] for e[i] */
	json_t *notes;		/* [{file, note}] */
};

/* Whether id is still listed (a fresh read); a failed read says yes: no excuse made. */
static bool verify__still_listed(struct verify *vf, uint64_t id)
{
	struct store_entry *e = NULL;
	size_t n = 0;
	bool listed;

	if (store__list(vf->st, &e, &n, NULL, 0) != 0)
		return true;
	listed = snapcli__find(e, n, id) != NULL;
	free(e);
	return listed;
}

static void verify__why(struct vcheck *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Sets c->why; out of memory, it stays NULL and prints as such. */
static void verify__why(struct vcheck *c, const char *fmt, ...)
{
	va_list ap;

	free(c->why);
	va_start(ap, fmt);
	if (vasprintf(&c->why, fmt, ap) < 0)
		c->why = NULL;
	va_end(ap);
}

static const char *verify__what(const struct vcheck *c)
{
	return c->why ? c->why : "(out of memory)";
}

static void verify__one(struct verify *vf, struct vcheck *c)
{
	const struct store_entry *e = c->e;
	struct snapcli_file f;
	uint64_t bytes = 0, hash = 0;
	char h1[24], h2[24], path[4200];
	int r;

	c->record = UINT64_MAX;
	c->st = V_DAMAGED;
	if (store__path(vf->st, e->id, path, sizeof(path)) != 0 ||
	    (c->path = strdup(path)) == NULL) {
		verify__why(c, "%s: checkpoint %" PRIu64 ": no path for it", vf->dir, e->id);
		return;
	}
	r = snapcli__hash_file(c->path, &bytes, &hash);
	if (r == 0) {
		c->size_ok = bytes == e->bytes;
		c->hash_ok = hash == e->hash;
		r = snapcli__scan_file(c->path, &f);
	} else {
		f.missing = r == -ENOENT;
		snprintf(f.why, sizeof(f.why), "%s: cannot read it: %s", c->path, km_strerror(r));
		f.err_record = UINT64_MAX;
	}
	if (r != 0 && f.missing) {
		c->st = verify__still_listed(vf, e->id) ? V_MISSING : V_GONE;
		verify__why(c, "%s: %s", c->path, c->st == V_GONE ?
			    "removed while verifying (no longer listed)" :
			    "missing (listed in the manifest)");
		return;
	}
	if (r != 0) {
		verify__why(c, "%s", f.why);
		c->record = f.err_record;
		return;
	}
	if (f.id.id != e->id || f.id.kind != e->kind) {
		verify__why(c, "%s: record 1: damaged (the file is checkpoint %" PRIu64 " (%s), "
			    "the manifest lists checkpoint %" PRIu64 " (%s))", c->path, f.id.id,
			    snapcli__kind(f.id.kind), e->id, snapcli__kind(e->kind));
		c->record = 1;
		return;
	}
	if (!c->size_ok) {
		verify__why(c, "%s: damaged (%" PRIu64 " bytes, the manifest says %" PRIu64 ")",
			    c->path, bytes, e->bytes);
		return;
	}
	if (!c->hash_ok) {
		verify__why(c, "%s: damaged (its XXH3 is %s, the manifest says %s: changed "
			    "since it was committed)", c->path, snapcli__hex(hash, h1, sizeof(h1)),
			    snapcli__hex(e->hash, h2, sizeof(h2)));
		return;
	}
	c->st = V_OK;
}

/* Marks id and the ancestors its parent links reach (as far as they are listed). */
static void verify__select_chain(struct verify *vf, uint64_t id)
{
	const struct store_entry *cur = snapcli__find(vf->e, vf->n, id);
	size_t steps;

	for (steps = 0; cur && steps <= vf->n; steps++) {
		vf->v[cur - vf->e].selected = true;
		if (cur->parent == 0)
			break;
		cur = snapcli__find(vf->e, vf->n, cur->parent);
	}
}

static void verify__restorable(struct verify *vf, struct vcheck *c)
{
	uint64_t *ids;
	size_t len = vf->n, k;
	const struct vcheck *m;
	char err[300];

	c->restorable = false;
	if ((ids = calloc(vf->n, sizeof(*ids))) == NULL) {
		snprintf(c->chain_why, sizeof(c->chain_why), "out of memory");
		return;
	}
	if (store__chain(vf->e, vf->n, c->e->id, ids, &len, err, sizeof(err)) != 0) {
		snprintf(c->chain_why, sizeof(c->chain_why), "its chain is broken: %s", err);
		goto out;
	}
	for (k = 0; k < len; k++) {
		m = &vf->v[snapcli__find(vf->e, vf->n, ids[k]) - vf->e];
		if (m->st == V_OK)
			continue;
		if (m == c)
			snprintf(c->chain_why, sizeof(c->chain_why), "its file is %s",
				 vstatus_name[m->st]);
		else
			snprintf(c->chain_why, sizeof(c->chain_why), "needs checkpoint %" PRIu64
				 ", whose file is %s", m->e->id, vstatus_name[m->st]);
		goto out;
	}
	c->restorable = true;
out:
	free(ids);
}

/* "ckpt-" 8 digits ".kmc" or ".ckpt-" 8 digits "." digits ".tmp": the id, else 0. */
static uint64_t verify__file_id(const char *name, bool *tmp)
{
	const char *s = name;
	uint64_t id = 0;
	size_t i, len = strlen(name);

	*tmp = name[0] == '.';
	if (*tmp)
		s++;
	if (strncmp(s, "ckpt-", 5) != 0)
		return 0;
	for (i = 5; i < 13; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		id = id * 10 + (uint64_t)(s[i] - '0');
	}
	if (!*tmp)
		return !strcmp(s + 13, ".kmc") ? id : 0;
	if (s[13] != '.' || len < 20 || strcmp(name + len - 4, ".tmp") != 0)
		return 0;
	for (i = 14; s + i < name + len - 4; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return s + 14 < name + len - 4 ? id : 0;
}

/* Whether a writer holds its lock (store.h: a live writer's file). */
static bool verify__locked(const char *path)
{
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	bool held;

	if (fd < 0)
		return false;
	held = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
	close(fd);
	return held;
}

static void verify__note(struct verify *vf, const char *path, const char *note)
{
	json_array_append_new(vf->notes, json_pack("{s:s, s:s}", "file", path, "note", note));
}

/* What store__gc() would remove, and what writers are at: notes, never damage. */
static void verify__leftovers(struct verify *vf)
{
	struct store_entry *e = NULL;
	struct dirent *de;
	char path[4400];
	size_t n = 0;
	uint64_t id;
	bool tmp;
	DIR *d;

	/* A fresh list: a checkpoint committed since the first read is no leftover. */
	if (store__list(vf->st, &e, &n, NULL, 0) != 0 || (d = opendir(vf->dir)) == NULL) {
		free(e);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		snprintf(path, sizeof(path), "%s/%s", vf->dir, de->d_name);
		if (!strcmp(de->d_name, "manifest.tmp")) {
			verify__note(vf, path, "the next manifest of a transaction that "
				     "died or is under way (kvm-snapshot gc removes a dead one)");
			continue;
		}
		if ((id = verify__file_id(de->d_name, &tmp)) == 0)
			continue;
		if (!tmp && snapcli__find(e, n, id) != NULL)
			continue;
		if (verify__locked(path))
			verify__note(vf, path, tmp ? "a checkpoint being written" :
				     "a checkpoint being committed");
		else
			verify__note(vf, path, tmp ? "an abandoned temporary file (kvm-snapshot gc "
				     "removes it)" : "not listed in the manifest: a leftover of a "
				     "crash (kvm-snapshot gc removes it)");
	}
	closedir(d);
	free(e);
}

static json_t *verify__json_one(const struct vcheck *c)
{
	const struct store_entry *e = c->e;

	return json_pack("{s:I, s:s, s:o, s:s, s:s, s:o, s:o, s:b, s:b, s:b, s:o}",
			 "id", (json_int_t)e->id, "kind", snapcli__kind(e->kind),
			 "parent", e->parent ? json_integer((json_int_t)e->parent) : json_null(),
			 "file", c->path ? c->path : "", "status", vstatus_name[c->st],
			 "error", c->st != V_OK ? json_string(verify__what(c)) : json_null(),
			 "record", c->record != UINT64_MAX ? json_integer((json_int_t)c->record) :
			 json_null(),
			 "size-ok", c->size_ok, "hash-ok", c->hash_ok, "restorable", c->restorable,
			 "not-restorable-because", c->restorable || c->st == V_GONE ? json_null() :
			 json_string(c->chain_why));
}

/* Prints the findings; returns the exit status. */
static int verify__report(struct verify *vf, bool json)
{
	json_t *doc, *arr, *dmg, *ok, *bad;
	size_t i, checked = 0, damaged = 0, unrest = 0, idx;
	struct vcheck *c;
	json_t *note;

	arr = json_array();
	dmg = json_array();
	ok = json_array();
	bad = json_array();
	for (i = 0; i < vf->n; i++) {
		c = &vf->v[i];
		if (!c->selected || c->st == V_GONE)
			continue;
		checked++;
		json_array_append_new(arr, verify__json_one(c));
		if (c->st != V_OK) {
			damaged++;
			json_array_append_new(dmg, json_integer((json_int_t)c->e->id));
		}
		if (!c->restorable)
			unrest++;
		json_array_append_new(c->restorable ? ok : bad,
				      json_integer((json_int_t)c->e->id));
		if (!json)
			printf("%s%s\n", c->st == V_OK ? c->path : verify__what(c),
			       c->st == V_OK ? ": ok" : "");
	}
	if (!json) {
		for (i = 0; i < vf->n; i++) {
			c = &vf->v[i];
			if (c->selected && c->st != V_GONE && !c->restorable)
				printf("checkpoint %" PRIu64 ": not restorable: %s\n", c->e->id,
				       c->chain_why);
		}
		if (unrest > 0) {
			printf("not restorable:");
			json_array_foreach(bad, idx, note)
				printf(" %" JSON_INTEGER_FORMAT, json_integer_value(note));
			printf("\nrestorable:");
			json_array_foreach(ok, idx, note)
				printf(" %" JSON_INTEGER_FORMAT, json_integer_value(note));
			printf("%s\n", json_array_size(ok) ? "" : " none");
		}
		json_array_foreach(vf->notes, idx, note)
			printf("note: %s: %s\n", json_string_value(json_object_get(note, "file")),
			       json_string_value(json_object_get(note, "note")));
		if (damaged || unrest)
			printf("%s: damage found: %zu of %zu checkpoint files damaged or missing, "
			       "%zu of %zu checkpoints not restorable\n", vf->dir, damaged, checked,
			       unrest, checked);
		else
			printf("%s: ok: %zu checkpoint%s verified, all restorable\n", vf->dir,
			       checked, checked == 1 ? "" : "s");
	}
	if (json) {
		doc = json_pack("{s:s, s:b, s:I, s:o, s:o, s:o, s:o, s:O}", "dir", vf->dir,
				"ok", !damaged && !unrest, "checked", (json_int_t)checked,
				"checkpoints", arr, "damaged", dmg, "restorable", ok,
				"not-restorable", bad, "notes", vf->notes);
		snapcli__print_json(doc);
	} else {
		json_decref(arr);
		json_decref(dmg);
		json_decref(ok);
		json_decref(bad);
	}
	return damaged || unrest ? SNAPCLI_FAILED : SNAPCLI_OK;
}

/* A manifest that does not parse: nothing is listed, so nothing restores through it. */
static int verify__bad_manifest(const char *dir, const char *err, bool json)
{
	if (json)
		snapcli__print_json(json_pack("{s:s, s:b, s:s}", "dir", dir, "ok", 0,
					      "manifest-error", err));
	else
		printf("%s\n%s: damage found: the manifest does not read, so no checkpoint "
		       "restores through it (the files may be whole)\n", err, dir);
	return SNAPCLI_FAILED;
}

int snapcli__verify(const char *dir, bool with_id, uint64_t id, bool json)
{
	struct verify vf = { .dir = dir };
	char err[1024] = "";
	int r, status = SNAPCLI_NO_STORE;
	size_t i;

	if ((r = store__open(dir, false, &vf.st, err, sizeof(err))) != 0) {
		fprintf(stderr, "kvm-snapshot: %s\n", err[0] ? err : km_strerror(r));
		return SNAPCLI_NO_STORE;
	}
	if ((r = store__list(vf.st, &vf.e, &vf.n, err, sizeof(err))) != 0) {
		if (r == KM_ERR_CORRUPT)
			status = verify__bad_manifest(dir, err, json);
		else
			fprintf(stderr, "kvm-snapshot: %s\n", err[0] ? err : km_strerror(r));
		goto out;
	}
	status = SNAPCLI_FAILED;
	if (with_id && snapcli__find(vf.e, vf.n, id) == NULL) {
		fprintf(stderr, "kvm-snapshot: %s: checkpoint %" PRIu64 " is not listed\n", dir,
			id);
		goto out;
	}
	if ((vf.v = calloc(vf.n ? vf.n : 1, sizeof(*vf.v))) == NULL ||
	    (vf.notes = json_array()) == NULL) {
		fprintf(stderr, "kvm-snapshot: out of memory\n");
		goto out;
	}
	for (i = 0; i < vf.n; i++) {
		vf.v[i].e = &vf.e[i];
		vf.v[i].selected = !with_id;
	}
	if (with_id)
		verify__select_chain(&vf, id);
	for (i = 0; i < vf.n; i++)
		if (vf.v[i].selected)
			verify__one(&vf, &vf.v[i]);
	for (i = 0; i < vf.n; i++)
		if (vf.v[i].selected)
			verify__restorable(&vf, &vf.v[i]);
	verify__leftovers(&vf);
	status = verify__report(&vf, json);
out:
	for (i = 0; vf.v && i < vf.n; i++) {
		free(vf.v[i].path);
		free(vf.v[i].why);
	}
	json_decref(vf.notes);
	free(vf.v);
	free(vf.e);
	store__close(vf.st);
	return status;
}
