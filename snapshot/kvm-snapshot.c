/*
 * kvm-snapshot COMMAND ...: lists, verifies, inspects, prunes and cleans
 * a checkpoint directory (docs/kvm-snapshot.1) without a VM. Everything
 * that changes the directory goes through store.h, so it is as crash-safe
 * beside a live VM checkpointing into it as the VM's own commits are.
 *
 * Exit status: 0 done (verify: all good); 1 damage found or the operation
 * failed; 2 bad command line; 3 the store cannot be opened or its
 * manifest read.
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "parse.h"
#include "kvm/kvm.h"
#include "snapshot/compact.h"
#include "snapshot/restore.h"
#include "snapshot/snapcli.h"

#define PRUNE_TRIES	3	/* a VM committing meanwhile can spoil a plan: plan again */

struct options {
	const char *cmd;
	char dir[4096];
	bool with_id;
	uint64_t id;
	bool json;
	bool have_keep;
	unsigned int keep;
};

static void usage(FILE *f)
{
	fprintf(f,
"Usage: kvm-snapshot COMMAND [OPTION]... DIR[@ID]\n"
"Look after a checkpoint directory of kvm-run (--checkpoint-dir).\n"
"\n"
"  list DIR [--json]             the checkpoints: id, time, kind, parent, chain\n"
"                                position, pages, bytes, pause the guest felt\n"
"  verify DIR[@ID] [--json]      check every file (or those ID needs) against the\n"
"                                manifest and record by record; say which\n"
"                                checkpoints still restore\n"
"  inspect DIR@ID [--json]       what one checkpoint file holds\n"
"  prune DIR --keep N [--json]   remove all but what the newest N need\n"
"  gc DIR [--json]               remove what crashes left (unlisted files)\n"
"  compact DIR[@ID] [--json]     merge the chain of ID (default: the newest) into\n"
"                                one base, in place of the chain; online-safe\n"
"  memory-hash DIR[@ID] [--json] the hash of the guest memory ID restores (as\n"
"                                query-memory-hash on the restored VM), no VM needed\n"
"\n"
"DIR@ID is split at the last '@' if only digits follow it: a directory whose\n"
"name ends in '@' and digits is written with a trailing '/' (DIR@7/).\n"
"\n"
"      --json      print one JSON document on stdout\n"
"  -h, --help      this help\n"
"  -V, --version   the version\n"
"\n"
"Exit status: 0 done (verify: no damage), 1 damage found or the operation\n"
"failed, 2 usage, 3 the store cannot be opened or its manifest read.\n");
}

/*
 * DIR or DIR@ID, split as kvm-run --restore splits it (restore__parse_spec);
 * a trailing '/' is dropped so that "DIR@7/" names DIR@7 and its paths
 * print without a double slash.
 */
static int split_target(const char *arg, struct options *o)
{
	size_t dlen;

	if (restore__parse_spec(arg, o->dir, sizeof(o->dir), &o->id) != 0) {
		const char *at = strrchr(arg, '@');

		if (at && at[1] && strspn(at + 1, "0123456789") == strlen(at + 1) && at > arg)
			fprintf(stderr, "kvm-snapshot: '%s': the ID must be 1 to %llu\n", arg,
				STORE_ID_MAX);
		else
			fprintf(stderr, "kvm-snapshot: '%s': %s\n", arg,
				*arg && *arg != '@' ? "path too long" : "no directory");
		return -1;
	}
	o->with_id = o->id != 0;
	dlen = strlen(o->dir);
	while (dlen > 1 && o->dir[dlen - 1] == '/')
		o->dir[--dlen] = 0;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_JSON = 256, OPT_KEEP };
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "keep", required_argument, NULL, OPT_KEEP },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const cmds[] = { "list", "verify", "inspect", "prune", "gc", "compact",
					    "memory-hash", NULL };
	uint64_t v;
	int c, i;

	if (argc < 2) {
		fprintf(stderr, "kvm-snapshot: need a command (see --help)\n");
		return -1;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		exit(0);
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("kvm-snapshot (%s)\n", PACKAGE_STRING);
		exit(0);
	}
	for (i = 0; cmds[i] && strcmp(cmds[i], argv[1]); i++)
		;
	if (!cmds[i]) {
		fprintf(stderr, "kvm-snapshot: unknown command '%s' (see --help)\n", argv[1]);
		return -1;
	}
	o->cmd = cmds[i];
	argc--;
	argv++;
	opterr = 0;	/* said here, as "kvm-snapshot: CMD: ..." */
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_KEEP:
			if (parse_u64(optarg, 1, STORE_ID_MAX, &v) != 0) {
				fprintf(stderr, "kvm-snapshot: --keep '%s': need 1 to %llu\n",
					optarg, STORE_ID_MAX);
				return -1;
			}
			o->keep = (unsigned int)v;
			o->have_keep = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("kvm-snapshot (%s)\n", PACKAGE_STRING);
			exit(0);
		case ':':
			fprintf(stderr, "kvm-snapshot: %s: %s needs a value\n", o->cmd,
				argv[optind - 1]);
			return -1;
		default:
			fprintf(stderr, "kvm-snapshot: %s: unrecognized option '%s' (see --help)\n",
				o->cmd, argv[optind - 1]);
			return -1;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "kvm-snapshot: %s: need %s%s\n", o->cmd, argc - optind ?
			"one " : "", !strcmp(o->cmd, "inspect") ? "DIR@ID" :
			!strcmp(o->cmd, "verify") ? "DIR[@ID]" : "DIR");
		return -1;
	}
	if (split_target(argv[optind], o) != 0)
		return -1;
	if (o->have_keep != !strcmp(o->cmd, "prune")) {
		fprintf(stderr, "kvm-snapshot: %s: %s\n", o->cmd, o->have_keep ?
			"--keep is for prune only" : "need --keep N (checkpoints kept restorable)");
		return -1;
	}
	if (o->with_id && strcmp(o->cmd, "inspect") && strcmp(o->cmd, "verify") &&
	    strcmp(o->cmd, "compact") && strcmp(o->cmd, "memory-hash")) {
		fprintf(stderr, "kvm-snapshot: %s: takes DIR, not DIR@ID (a directory named "
			"so is given with a trailing '/')\n", o->cmd);
		return -1;
	}
	if (!o->with_id && !strcmp(o->cmd, "inspect")) {
		fprintf(stderr, "kvm-snapshot: inspect: need DIR@ID (which checkpoint)\n");
		return -1;
	}
	return 0;
}

/* The store and its list, or an exit status (SNAPCLI_NO_STORE) with the reason said. */
static int open_list(const char *dir, struct store **st, struct store_entry **e, size_t *n)
{
	char err[1024] = "";
	int r;

	*e = NULL;
	*n = 0;
	if ((r = store__open(dir, false, st, err, sizeof(err))) != 0 ||
	    (r = store__list(*st, e, n, err, sizeof(err))) != 0) {
		fprintf(stderr, "kvm-snapshot: %s\n", err[0] ? err : km_strerror(r));
		store__close(*st);
		*st = NULL;
		return SNAPCLI_NO_STORE;
	}
	return SNAPCLI_OK;
}

static json_t *entry_json(const struct store_entry *e)
{
	char t[64], h[24];

	snapcli__time(e->time_ns, true, t, sizeof(t));
	return json_pack("{s:I, s:s, s:I, s:s, s:o, s:I, s:I, s:I, s:f, s:s}",
			 "id", (json_int_t)e->id, "time", t, "time-ns", (json_int_t)e->time_ns,
			 "kind", snapcli__kind(e->kind),
			 "parent", e->parent ? json_integer((json_int_t)e->parent) : json_null(),
			 "chain-pos", (json_int_t)e->chain_pos, "pages", (json_int_t)e->pages,
			 "bytes", (json_int_t)e->bytes, "pause-ms", e->pause_ns / 1e6,
			 "hash", snapcli__hex(e->hash, h, sizeof(h)));
}

static int cmd_list(const struct options *o)
{
	struct store_entry *e;
	struct store *st;
	json_t *arr;
	size_t n, i, bases = 0;
	char t[64], par[24];
	int status;

	if ((status = open_list(o->dir, &st, &e, &n)) != SNAPCLI_OK)
		return status;
	if (o->json) {
		arr = json_array();
		for (i = 0; i < n; i++)
			json_array_append_new(arr, entry_json(&e[i]));
		snapcli__print_json(json_pack("{s:s, s:I, s:o}", "dir", o->dir, "count",
					      (json_int_t)n, "checkpoints", arr));
		goto out;
	}
	if (n == 0) {
		printf("%s: no checkpoints\n", o->dir);
		goto out;
	}
	printf("%8s  %-23s  %-4s  %8s  %5s  %8s  %12s  %9s\n", "ID", "TIME", "KIND", "PARENT",
	       "CHAIN", "PAGES", "BYTES", "PAUSE-MS");
	for (i = 0; i < n; i++) {
		snapcli__time(e[i].time_ns, false, t, sizeof(t));
		snprintf(par, sizeof(par), "%" PRIu64, e[i].parent);
		printf("%8" PRIu64 "  %-23s  %-4s  %8s  %5" PRIu64 "  %8" PRIu64 "  %12" PRIu64
		       "  %9.3f\n", e[i].id, t, snapcli__kind(e[i].kind), e[i].parent ? par : "-",
		       e[i].chain_pos, e[i].pages, e[i].bytes, e[i].pause_ns / 1e6);
		bases += e[i].kind == STORE_FULL;
	}
	printf("%zu checkpoint%s in %zu chain%s\n", n, n == 1 ? "" : "s", bases,
	       bases == 1 ? "" : "s");
out:
	free(e);
	store__close(st);
	return status;
}

static bool in_ids(const uint64_t *ids, size_t n, uint64_t id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

static int cmd_prune(const struct options *o)
{
	struct store_entry *e = NULL;
	struct store *st = NULL;
	uint64_t *del = NULL;
	json_t *removed, *kept;
	char err[1024] = "", path[4200];
	size_t n = 0, ndel = 0, i;
	int r, status, tries;

	if ((r = store__open(o->dir, false, &st, err, sizeof(err))) != 0) {
		fprintf(stderr, "kvm-snapshot: %s\n", err[0] ? err : km_strerror(r));
		return SNAPCLI_NO_STORE;
	}
	status = SNAPCLI_OK;
	for (tries = 0;; tries++) {
		free(e);
		free(del);
		del = NULL;
		if ((r = store__list(st, &e, &n, err, sizeof(err))) != 0) {
			fprintf(stderr, "kvm-snapshot: %s\n", err[0] ? err : km_strerror(r));
			status = SNAPCLI_NO_STORE;
			goto out;
		}
		if ((del = calloc(n ? n : 1, sizeof(*del))) == NULL ||
		    (r = store__prune_plan(e, n, o->keep, del, &ndel)) != 0) {
			fprintf(stderr, "kvm-snapshot: %s: planning: %s\n", o->dir,
				km_strerror(del ? r : -ENOMEM));
			status = SNAPCLI_FAILED;
			goto out;
		}
		if (ndel == 0 || (r = store__remove(st, del, ndel, err, sizeof(err))) == 0)
			break;
		/* A checkpoint committed or removed meanwhile (the VM's own retention): again. */
		if ((r != KM_ERR_STATE && r != -ENOENT) || tries + 1 == PRUNE_TRIES) {
			fprintf(stderr, "kvm-snapshot: %s\n", err[0] ? err : km_strerror(r));
			status = SNAPCLI_FAILED;
			goto out;
		}
	}
	removed = json_array();
	kept = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(in_ids(del, ndel, e[i].id) ? removed : kept,
				      json_integer((json_int_t)e[i].id));
	if (o->json) {
		snapcli__print_json(json_pack("{s:s, s:i, s:o, s:o}", "dir", o->dir, "keep",
					      (int)o->keep, "removed", removed, "kept", kept));
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (!in_ids(del, ndel, e[i].id))
			continue;
		store__path(st, e[i].id, path, sizeof(path));
		printf("removed checkpoint %" PRIu64 " (%s): %s\n", e[i].id,
		       snapcli__kind(e[i].kind), path);
	}
	if (ndel == 0)
		printf("%s: nothing to remove: the newest %u checkpoint%s need%s all %zu\n", o->dir,
		       o->keep, o->keep == 1 ? "" : "s", o->keep == 1 ? "s" : "", n);
	else
		printf("%s: removed %zu, kept %zu checkpoint%s\n", o->dir, ndel, n - ndel,
		       n - ndel == 1 ? "" : "s");
	json_decref(removed);
	json_decref(kept);
out:
	free(del);
	free(e);
	store__close(st);
	return status;
}

static int cmd_gc(const struct options *o)
{
	struct store *st = NULL;
	unsigned int removed = 0;
	char err[1024] = "";
	int r;

	if ((r = store__open(o->dir, false, &st, err, sizeof(err))) != 0) {
		fprintf(stderr, "kvm-snapshot: %s\n", err[0] ? err : km_strerror(r));
		return SNAPCLI_NO_STORE;
	}
	r = store__gc(st, &removed, err, sizeof(err));
	if (r != 0)
		fprintf(stderr, "kvm-snapshot: %s\n", err[0] ? err : km_strerror(r));
	else if (o->json)
		snapcli__print_json(json_pack("{s:s, s:i}", "dir", o->dir, "removed",
					      (int)removed));
	else
		printf("%s: removed %u leftover file%s\n", o->dir, removed,
		       removed == 1 ? "" : "s");
	store__close(st);
	return r == 0 ? SNAPCLI_OK : r == KM_ERR_CORRUPT || r == KM_ERR_VERSION ?
		SNAPCLI_NO_STORE : SNAPCLI_FAILED;
}

/* The id given, or the newest: 0 and it, or an exit status with the reason said. */
static int target_id(const struct options *o, const struct store_entry *e, size_t n,
		     uint64_t *id)
{
	*id = o->with_id ? o->id : restore__newest(e, n);
	if (*id)
		return SNAPCLI_OK;
	fprintf(stderr, "kvm-snapshot: %s: no checkpoint\n", o->dir);
	return SNAPCLI_FAILED;
}

static int cmd_compact(const struct options *o)
{
	struct compact_result res;
	struct store *st = NULL;
	struct store_entry *e = NULL;
	char err[1024] = "";
	size_t n;
	uint64_t id;
	int r, status;

	if ((status = open_list(o->dir, &st, &e, &n)) != SNAPCLI_OK)
		return status;
	if ((status = target_id(o, e, n, &id)) != SNAPCLI_OK)
		goto out;
	if ((r = compact__chain(st, id, true, &res, err, sizeof(err))) != 0) {
		fprintf(stderr, "kvm-snapshot: %s\n", err[0] ? err : km_strerror(r));
		status = SNAPCLI_FAILED;
		goto out;
	}
	if (o->json)
		snapcli__print_json(json_pack("{s:s, s:I, s:I, s:i, s:I, s:I, s:I}", "dir", o->dir,
					      "checkpoint", (json_int_t)id, "base",
					      (json_int_t)res.id, "merged", (int)res.merged,
					      "pages", (json_int_t)res.pages,
					      "bytes", (json_int_t)res.bytes,
					      "bytes-before", (json_int_t)res.bytes_before));
	else
		printf("%s: checkpoint %llu is now base %llu: %u files merged, %llu pages, "
		       "%llu bytes (were %llu)\n", o->dir, (unsigned long long)id,
		       (unsigned long long)res.id, res.merged, (unsigned long long)res.pages,
		       (unsigned long long)res.bytes, (unsigned long long)res.bytes_before);
out:
	free(e);
	store__close(st);
	return status;
}

static int cmd_memory_hash(const struct options *o)
{
	struct restore_image img;
	struct store *st = NULL;
	struct store_entry *e = NULL;
	char err[1024] = "", hex[24];
	size_t n;
	uint64_t id, h;
	int r, status;

	if ((status = open_list(o->dir, &st, &e, &n)) != SNAPCLI_OK)
		return status;
	if ((status = target_id(o, e, n, &id)) != SNAPCLI_OK)
		goto out;
	if ((r = restore__image(st, id, &img, err, sizeof(err))) != 0 ||
	    (r = memory__hash(&img.kvm->mem, &h)) != 0) {
		fprintf(stderr, "kvm-snapshot: %s\n", err[0] ? err : km_strerror(r));
		status = SNAPCLI_FAILED;
		if (r == 0)
			restore__image_free(&img);
		goto out;
	}
	restore__image_free(&img);
	/* The format query-memory-hash prints, so the two compare as strings. */
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);
	if (o->json)
		snapcli__print_json(json_pack("{s:s, s:I, s:s}", "dir", o->dir, "checkpoint",
					      (json_int_t)id, "memory-hash", hex));
	else
		printf("%s\n", hex);
out:
	free(e);
	store__close(st);
	return status;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };

	if (parse_options(argc, argv, &o) != 0)
		return SNAPCLI_USAGE;
	if (!strcmp(o.cmd, "list"))
		return cmd_list(&o);
	if (!strcmp(o.cmd, "verify"))
		return snapcli__verify(o.dir, o.with_id, o.id, o.json);
	if (!strcmp(o.cmd, "inspect"))
		return snapcli__inspect(o.dir, o.id, o.json);
	if (!strcmp(o.cmd, "prune"))
		return cmd_prune(&o);
	if (!strcmp(o.cmd, "compact"))
		return cmd_compact(&o);
	if (!strcmp(o.cmd, "memory-hash"))
		return cmd_memory_hash(&o);
	return cmd_gc(&o);
}
