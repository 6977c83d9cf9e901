/*
 * kvm-snapshot's parts (docs/kvm-snapshot.1): reading a checkpoint file
 * through and through without a VM (snapcli-scan.c), and the verify and
 * inspect commands (snapcli-verify.c, snapcli-inspect.c). Everything here
 * reads; only prune and gc, in kvm-snapshot.c, change a store, and those
 * only through store.h.
 *
 * Nothing here exits: the commands return an exit status (enum
 * snapcli_exit) and print their findings on stdout, their errors on
 * stderr as "kvm-snapshot: ..." lines.
 */
#ifndef KM_SNAPCLI_H
#define KM_SNAPCLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "pages.h"
#include "snapshot/ckptfile.h"
#include "snapshot/store.h"

enum snapcli_exit {
	SNAPCLI_OK = 0,
	SNAPCLI_FAILED = 1,	/* damage found, or the operation failed */
	SNAPCLI_USAGE = 2,
	SNAPCLI_NO_STORE = 3,	/* the store cannot be opened or its manifest read */
};

/* What one pass over a checkpoint file found (snapcli__scan_file). */
struct snapcli_file {
	/* REC_HEADER */
	bool have_header;
	uint64_t major, minor, caps;
	/* REC_CHECKPOINT */
	bool have_id;
	struct ckptfile_id id;
	/* the first REC_VM_CONFIG; configs: how many there are */
	unsigned int configs;
	uint64_t mem_size, nr_vcpus;
	char name[64];
	/* REC_PAGES */
	uint64_t page_recs, pages, distinct;
	uint64_t kind_pages[PAGE_KIND_MAX], kind_bytes[PAGE_KIND_MAX];
	uint64_t index_recs;	/* REC_PAGE_INDEX records (0: a file without a page index) */
	/* The config's disk (disk_size 0: none named, or an older config without its size) */
	bool disk, disk_ro;
	uint64_t disk_size;
	/* REC_DISK_BLOCKS */
	uint64_t disk_recs, disk_blocks;
	/* REC_VM_STATE, REC_VCPU_STATE (vcpu_ids: bit i for vCPU id i < 64) */
	unsigned int vm_states, vcpu_states;
	uint64_t vcpu_ids;
	/* REC_END */
	bool ended;
	struct ckptfile_end end;
	uint64_t records;	/* records read, the header included */
	/* The first damage: 0, or the error; why names the file (and the record). */
	int err;
	bool missing;		/* the file does not exist (err -ENOENT) */
	uint64_t err_record;	/* the record it is in; UINT64_MAX: not one record's */
	char why[4608];
};

/*
 * Reads every record of the checkpoint file at path and checks what a
 * restore relies on: checksums, header, identity, page entries (lz4 ones
 * decompress), a VM config, the VM state and one state per vCPU, REC_END
 * with CKE_PAGES equal to the entries counted, nothing after it. Fills *f
 * as far as it got; 0, or f->err (with f->why) at the first damage.
 */
int snapcli__scan_file(const char *path, struct snapcli_file *f);

/* The size and XXH3-64 (seed 0) of the whole file at path, as store.h lists them. */
int snapcli__hash_file(const char *path, uint64_t *bytes, uint64_t *hash);

/* "2026-12-01 14:03:22.123" in local time (iso: "2026-12-01T14:03:22.123+01:00"). */
void snapcli__time(uint64_t ns, bool iso, char *out, size_t len);
const char *snapcli__kind(uint64_t kind);	/* "base", "incr" or "unknown" */
/* "0x0123456789abcdef" into out (19 bytes at least). */
const char *snapcli__hex(uint64_t v, char *out, size_t len);
/* Prints one JSON document on stdout and drops the reference. */
void snapcli__print_json(json_t *doc);
/* The entry of id in e[] (ascending ids), or NULL. */
const struct store_entry *snapcli__find(const struct store_entry *e, size_t n, uint64_t id);

/*
 * The commands. dir as given, with_id: whether id was given (DIR@ID).
 * Return an enum snapcli_exit.
 */
int snapcli__verify(const char *dir, bool with_id, uint64_t id, bool json);
int snapcli__inspect(const char *dir, uint64_t id, bool json);

#endif
