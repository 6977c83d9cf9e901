/*
 * kvm-snapshot inspect DIR@ID (docs/kvm-snapshot.1): what one checkpoint
 * file holds, read through once (snapcli__scan_file), beside what the
 * manifest says of it and the chain it belongs to. A damaged file is
 * shown as far as it reads, and the damage named.
 */
#define _GNU_SOURCE
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kvm/virtio-blk.h"
#include "snapshot/snapcli.h"

static const char *const kind_name[PAGE_KIND_MAX] = { "zero", "raw", "lz4" };

struct inspect {
	const char *dir;
	const struct store_entry *e;	/* the listed entry */
	char path[4200];
	uint64_t bytes, hash;		/* what the file has now */
	int hash_r;			/* 0, or why it could not be hashed */
	struct snapcli_file f;
	uint64_t *chain;		/* base first */
	size_t chain_len;
	char chain_err[300];		/* when the chain does not resolve */
	json_t *children;		/* ids of the increments on it */
};

static json_t *inspect__ids(const uint64_t *ids, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_integer((json_int_t)ids[i]));
	return a;
}

static json_t *inspect__json(struct inspect *in)
{
	const struct snapcli_file *f = &in->f;
	const struct store_entry *e = in->e;
	json_t *doc, *pages, *vcpus;
	char t[64], h[24];
	unsigned int k;

	doc = json_pack("{s:s, s:I, s:s, s:s, s:o, s:I, s:s, s:b, s:b}", "dir", in->dir,
			"id", (json_int_t)e->id, "file", in->path, "kind", snapcli__kind(e->kind),
			"parent", e->parent ? json_integer((json_int_t)e->parent) : json_null(),
			"bytes", (json_int_t)in->bytes,
			"hash", snapcli__hex(in->hash, h, sizeof(h)),
			"size-ok", in->hash_r == 0 && in->bytes == e->bytes,
			"hash-ok", in->hash_r == 0 && in->hash == e->hash);
	snapcli__time(e->time_ns, true, t, sizeof(t));
	json_object_set_new(doc, "listed", json_pack(
		"{s:s, s:I, s:I, s:I, s:f, s:s, s:I}", "time", t, "time-ns", (json_int_t)e->time_ns,
		"pages", (json_int_t)e->pages, "bytes", (json_int_t)e->bytes,
		"pause-ms", e->pause_ns / 1e6, "hash", snapcli__hex(e->hash, h, sizeof(h)),
		"chain-pos", (json_int_t)e->chain_pos));
	if (f->have_header)
		json_object_set_new(doc, "format", json_pack(
			"{s:I, s:I, s:I, s:b}", "major", (json_int_t)f->major, "minor",
			(json_int_t)f->minor, "caps", (json_int_t)f->caps, "lz4",
			(f->caps & STREAM_CAP_LZ4) != 0));
	if (f->have_id)
		json_object_set_new(doc, "identity", json_pack(
			"{s:I, s:o, s:s, s:s}", "id", (json_int_t)f->id.id, "parent",
			f->id.parent ? json_integer((json_int_t)f->id.parent) : json_null(),
			"kind", snapcli__kind(f->id.kind), "name", f->id.name));
	if (f->configs)
		json_object_set_new(doc, "config", json_pack(
			"{s:I, s:I, s:s, s:i}", "memory-size", (json_int_t)f->mem_size, "vcpus",
			(json_int_t)f->nr_vcpus, "name", f->name, "records", (int)f->configs));
	pages = json_pack("{s:I, s:I, s:I, s:I}", "records", (json_int_t)f->page_recs, "entries",
			  (json_int_t)f->pages, "distinct", (json_int_t)f->distinct,
			  "index-records", (json_int_t)f->index_recs);
	for (k = 0; k < PAGE_KIND_MAX; k++) {
		char key[32];

		json_object_set_new(pages, kind_name[k],
				    json_integer((json_int_t)f->kind_pages[k]));
		snprintf(key, sizeof(key), "%s-bytes", kind_name[k]);
		json_object_set_new(pages, key, json_integer((json_int_t)f->kind_bytes[k]));
	}
	json_object_set_new(doc, "pages", pages);
	/* A writable disk's content (null: the VM has none, or a read-only one). */
	json_object_set_new(doc, "disk", f->disk && !f->disk_ro ? json_pack(
		"{s:I, s:I, s:I, s:I}", "size", (json_int_t)f->disk_size, "blocks",
		(json_int_t)f->disk_blocks, "block-size", (json_int_t)VIRTIO_BLK_BLOCK, "records",
		(json_int_t)f->disk_recs) : json_null());
	vcpus = json_array();
	for (k = 0; k < 64; k++)
		if (f->vcpu_ids & (1ULL << k))
			json_array_append_new(vcpus, json_integer(k));
	json_object_set_new(doc, "state", json_pack("{s:b, s:i, s:o}", "vm-state",
						    f->vm_states > 0, "vcpus", (int)f->vcpu_states,
						    "vcpu-ids", vcpus));
	if (f->ended) {
		snapcli__time(f->end.capture_ns, true, t, sizeof(t));
		json_object_set_new(doc, "end", json_pack(
			"{s:s, s:I, s:b, s:f, s:I, s:o}", "capture-time", t, "capture-ns",
			(json_int_t)f->end.capture_ns, "paused", f->end.paused, "pause-ms",
			f->end.pause_ns / 1e6, "pages", (json_int_t)f->end.pages, "memory-hash",
			f->end.has_hash ? json_string(snapcli__hex(f->end.hash, h, sizeof(h))) :
			json_null()));
	}
	json_object_set_new(doc, "records", json_integer((json_int_t)f->records));
	json_object_set_new(doc, "chain", inspect__ids(in->chain, in->chain_len));
	json_object_set_new(doc, "chain-error", in->chain_err[0] ? json_string(in->chain_err) :
			    json_null());
	json_object_set_new(doc, "children", json_incref(in->children));
	json_object_set_new(doc, "damage", f->err ? json_string(f->why) : json_null());
	return doc;
}

static void inspect__text(struct inspect *in)
{
	const struct snapcli_file *f = &in->f;
	const struct store_entry *e = in->e;
	char t[64], h[24], h2[24];
	unsigned int k;
	size_t i;
	json_t *c;

	snapcli__time(e->time_ns, false, t, sizeof(t));
	printf("checkpoint %" PRIu64 " of %s\n", e->id, in->dir);
	printf("  listed     %s, %s", snapcli__kind(e->kind), t);
	if (e->parent)
		printf(", on %" PRIu64, e->parent);
	printf(", %" PRIu64 " pages, %" PRIu64 " bytes, pause %.3f ms, XXH3 %s\n", e->pages,
	       e->bytes, e->pause_ns / 1e6, snapcli__hex(e->hash, h, sizeof(h)));
	if (in->hash_r == 0)
		printf("  file       %s: %" PRIu64 " bytes, XXH3 %s (%s)\n", in->path, in->bytes,
		       snapcli__hex(in->hash, h2, sizeof(h2)), in->bytes == e->bytes &&
		       in->hash == e->hash ? "as listed" : "NOT as listed");
	else
		printf("  file       %s: %s\n", in->path, km_strerror(in->hash_r));
	if (f->have_header)
		printf("  header     format %" PRIu64 ".%" PRIu64 ", caps 0x%" PRIx64 "%s\n",
		       f->major, f->minor, f->caps, f->caps & STREAM_CAP_LZ4 ? " (lz4)" : "");
	if (f->have_id) {
		printf("  identity   checkpoint %" PRIu64 ", %s", f->id.id,
		       snapcli__kind(f->id.kind));
		if (f->id.parent)
			printf(" on %" PRIu64, f->id.parent);
		printf(", VM \"%s\"\n", f->id.name);
	}
	if (f->configs)
		printf("  VM config  memory %" PRIu64 " bytes (%.1f MiB), %" PRIu64 " vCPUs, "
		       "name \"%s\"\n", f->mem_size, f->mem_size / 1048576.0, f->nr_vcpus, f->name);
	if (in->chain_err[0]) {
		printf("  chain      broken: %s\n", in->chain_err);
	} else {
		printf("  chain     ");
		for (i = 0; i < in->chain_len; i++)
			printf(" %" PRIu64, in->chain[i]);
		printf(" (position %" PRIu64 ")", e->chain_pos);
		if (json_array_size(in->children)) {
			printf("; increments on it:");
			json_array_foreach(in->children, i, c)
				printf(" %" JSON_INTEGER_FORMAT, json_integer_value(c));
		}
		printf("\n");
	}
	if (!f->have_id)
		return;	/* nothing past the file's first records to show */
	printf("  pages      %" PRIu64 " entries (%" PRIu64 " distinct pages) in %" PRIu64
	       " records:", f->pages, f->distinct, f->page_recs);
	for (k = 0; k < PAGE_KIND_MAX; k++)
		printf("%s %s %" PRIu64 " (%" PRIu64 " bytes)", k ? "," : "", kind_name[k],
		       f->kind_pages[k], f->kind_bytes[k]);
	printf("\n  page index %s", f->index_recs ? "yes (a lazy restore reads it)" :
	       "none (a lazy restore walks the page entries)");
	if (f->disk && !f->disk_ro)
		printf("\n  disk       %" PRIu64 " blocks of %u bytes in %" PRIu64 " records, of a "
		       "disk of %" PRIu64 " bytes", f->disk_blocks, VIRTIO_BLK_BLOCK, f->disk_recs,
		       f->disk_size);
	else if (f->disk)
		printf("\n  disk       read-only: not in the checkpoint");
	printf("\n  state      VM state %s, %u vCPU states", f->vm_states ? "present" : "absent",
	       f->vcpu_states);
	if (f->vcpu_states) {
		printf(" (ids");
		for (k = 0; k < 64; k++)
			if (f->vcpu_ids & (1ULL << k))
				printf(" %u", k);
		printf(")");
	}
	printf("\n");
	if (f->ended) {
		snapcli__time(f->end.capture_ns, false, t, sizeof(t));
		printf("  end        captured %s, pause %.3f ms%s, %" PRIu64 " pages", t,
		       f->end.pause_ns / 1e6, f->end.paused ? " (the VM was paused)" : "",
		       f->end.pages);
		if (f->end.has_hash)
			printf(", memory hash %s", snapcli__hex(f->end.hash, h, sizeof(h)));
		if (f->end.has_disk)
			printf(", %" PRIu64 " disk blocks", f->end.disk_blocks);
		printf("\n");
	}
	printf("  records    %" PRIu64 " read%s\n", f->records,
	       f->err ? "" : ", the end record last: complete");
}

int snapcli__inspect(const char *dir, uint64_t id, bool json)
{
	struct inspect in = { .dir = dir };
	struct store_entry *e = NULL;
	struct store *st = NULL;
	char err[1024] = "";
	size_t n = 0, i;
	int r, status = SNAPCLI_NO_STORE;

	if ((r = store__open(dir, false, &st, err, sizeof(err))) != 0 ||
	    (r = store__list(st, &e, &n, err, sizeof(err))) != 0) {
		fprintf(stderr, "kvm-snapshot: %s\n", err[0] ? err : km_strerror(r));
		goto out;
	}
	status = SNAPCLI_FAILED;
	if ((in.e = snapcli__find(e, n, id)) == NULL) {
		fprintf(stderr, "kvm-snapshot: %s: checkpoint %" PRIu64 " is not listed\n", dir,
			id);
		goto out;
	}
	if ((in.chain = calloc(n, sizeof(*in.chain))) == NULL ||
	    (in.children = json_array()) == NULL) {
		fprintf(stderr, "kvm-snapshot: out of memory\n");
		goto out;
	}
	in.chain_len = n;
	if (store__chain(e, n, id, in.chain, &in.chain_len, in.chain_err,
			 sizeof(in.chain_err)) != 0 && !in.chain_err[0])
		snprintf(in.chain_err, sizeof(in.chain_err), "it does not resolve");
	for (i = 0; i < n; i++)
		if (e[i].kind == STORE_INCR && e[i].parent == id)
			json_array_append_new(in.children, json_integer((json_int_t)e[i].id));
	store__path(st, id, in.path, sizeof(in.path));
	in.hash_r = snapcli__hash_file(in.path, &in.bytes, &in.hash);
	snapcli__scan_file(in.path, &in.f);
	if (json)
		snapcli__print_json(inspect__json(&in));
	else
		inspect__text(&in);
	if (in.f.err) {
		fprintf(stderr, "kvm-snapshot: %s\n", in.f.why);
		goto out;
	}
	if (in.hash_r != 0 || in.bytes != in.e->bytes || in.hash != in.e->hash ||
	    in.f.id.id != id || in.f.id.kind != in.e->kind) {
		fprintf(stderr, "kvm-snapshot: %s: not the file the manifest lists (its size, "
			"XXH3 or identity differ): see kvm-snapshot verify\n", in.path);
		goto out;
	}
	status = SNAPCLI_OK;
out:
	json_decref(in.children);
	free(in.chain);
	free(e);
	store__close(st);
	return status;
}
