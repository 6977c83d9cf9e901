/*
 * The checkpoint store (DESIGN.md s.9): one directory holding the
 * checkpoints of one VM, crash-safe at any instant (SIGKILL or power loss).
 *
 * The store names, lists, chains and removes checkpoint files; what is in
 * a file (a record stream) is the writer's business. Layout of DIR:
 *
 *   ckpt-<id, 8 digits>.kmc   a complete checkpoint file (mode 0600)
 *   .ckpt-<id>.<pid>.tmp      one being written; its writer holds an OFD
 *                             write lock on it for as long as it lives
 *   manifest                  the commit point: the list of checkpoints
 *   manifest.tmp              the next manifest, while a transaction runs
 *   lock                      OFD-locked for each manifest transaction
 *
 * The rule: a checkpoint is complete if and only if the manifest lists it.
 * A commit makes the file durable under its final name first and lists it
 * last; a removal delists first and unlinks after. A crash therefore leaves
 * at worst files nobody lists, which store__gc() removes; it never removes
 * a listed file or one whose writer is alive.
 *
 * The manifest (docs/format.md framing, lib/record.h codec) is:
 *   REC_HEADER       payload "KMSTORE1" (8 bytes, not a field, as the
 *                    stream header of format.md s.4.1), then u64 fields
 *                    1 major version (1), 2 minor version (0),
 *                    64 next id (no id below it is ever given again)
 *   STORE_REC_ENTRY  one per listed checkpoint, ascending ids, u64 fields
 *                    enum store_entry_tag
 *   REC_END
 * A reader refuses a newer major version (KM_ERR_VERSION), skips unknown
 * fields (a newer minor version), and takes any other damage as
 * KM_ERR_CORRUPT. The manifest is only ever replaced by rename(), never
 * written in place, so a reader needs no lock.
 *
 * Every function that can fail for a reason worth telling writes a
 * sentence naming the path (and the checkpoint) into err (errlen bytes,
 * may be NULL/0) and returns 0 or a negative error of lib/err.h.
 *
 * Nothing in a struct store changes after store__open(), and DIR/lock is
 * opened afresh for each transaction: threads may share one store, and
 * their transactions exclude each other as two processes' do.
 */
#ifndef KM_STORE_H
#define KM_STORE_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_MAGIC		"KMSTORE1"
#define STORE_VERSION_MAJOR	1
#define STORE_VERSION_MINOR	0
#define STORE_ID_MAX		99999999ULL	/* ids are 8 decimal digits in names */
#define STORE_MANIFEST_MAX	(64U << 20)	/* a larger manifest is refused */
#define STORE_LOCK_WAIT_MS	30000		/* a transaction waits this long for DIR/lock */

/*
 * Record types of the manifest. lib/record.h's enum rec_type grows from 1
 * for the stream formats; the store's start at 64 so that the two never
 * collide however far that enum grows.
 */
enum store_rec_type {
	STORE_REC_ENTRY = 64,	/* one listed checkpoint: fields enum store_entry_tag */
};

/* Field tags of the manifest's REC_HEADER (1 and 2 as in docs/format.md s.4.1). */
enum store_hdr_tag {
	STORE_HDR_MAJOR = 1,
	STORE_HDR_MINOR = 2,
	STORE_HDR_NEXT_ID = 64,	/* the lowest id never given out; optional */
};

/* Field tags of a STORE_REC_ENTRY: all u64, all required. */
enum store_entry_tag {
	STORE_E_ID = 1,
	STORE_E_PARENT = 2,
	STORE_E_KIND = 3,
	STORE_E_TIME_NS = 4,
	STORE_E_PAGES = 5,
	STORE_E_BYTES = 6,
	STORE_E_PAUSE_NS = 7,
	STORE_E_HASH = 8,
	STORE_E_CHAIN_POS = 9,
};

enum store_kind {
	STORE_FULL = 1,		/* a base: restores on its own */
	STORE_INCR = 2,		/* the pages changed since its parent */
};

struct store_entry {
	uint64_t id;		/* 1 .. STORE_ID_MAX */
	uint64_t parent;	/* the checkpoint an increment applies to; 0 for a base */
	uint64_t kind;		/* enum store_kind */
	uint64_t time_ns;	/* CLOCK_REALTIME when the guest state was taken */
	uint64_t pages;		/* guest pages in the file */
	uint64_t bytes;		/* the file's size */
	uint64_t pause_ns;	/* how long the guest was paused for it */
	uint64_t hash;		/* XXH3-64 (seed 0) of the file's whole content */
	uint64_t chain_pos;	/* 0 for a base, its parent's + 1 otherwise */
};

struct store;

/*
 * A checkpoint being written: write it into fd (from offset 0; the store
 * reads the file back at commit). The fd belongs to the store: do not
 * close it, since its lock tells store__gc() the file is alive. End it with
 * store__commit(), store__commit_replacing() or store__abort().
 */
struct store_pending {
	int fd;			/* -1 when nothing is pending */
	uint64_t id;		/* the id it will be listed under */
	char tmp[64];		/* its temporary name in DIR */
};

/*
 * Opens the store in dir. With create, dir is made (mode 0700, its parent
 * must exist) and given an empty manifest if it has none; without, a dir
 * without a manifest is refused (-ENOENT). Refused too: dir or one of the
 * store's files in it that is a symlink or not what it should be (-ELOOP),
 * owned by another user (KM_ERR_AUTH) or writable by group or others
 * (KM_ERR_STATE), since whoever can write there can change what a restore
 * puts into the guest. *out is freed with store__close().
 */
int store__open(const char *dir, bool create, struct store **out, char *err, size_t errlen);
/* NULL-safe. A pending checkpoint must have been ended before. */
void store__close(struct store *st);
/* The directory, as given to store__open(). */
const char *store__dir(const struct store *st);

/*
 * A fresh read of the manifest: *out (malloc'd, the caller frees it; NULL
 * when *n is 0) holds the listed checkpoints in ascending id order.
 * KM_ERR_CORRUPT if it is damaged (err names the file and the record, the
 * header being record 0), KM_ERR_VERSION if a newer kvm-migrate wrote it,
 * KM_ERR_TOO_LARGE past STORE_MANIFEST_MAX. No lock is taken.
 */
int store__list(struct store *st, struct store_entry **out, size_t *n, char *err, size_t errlen);

/*
 * Starts a checkpoint: reserves the next id, above every id ever listed
 * and every ckpt or temporary file present (so a crash never makes an id
 * come back), and creates its temporary file, locked. p->fd is where the
 * writer writes.
 */
int store__begin(struct store *st, struct store_pending *p, char *err, size_t errlen);
/*
 * Commits p as e, durably: fsync the file, rename it to its final name,
 * fsync DIR, then list it in one manifest transaction. The caller fills
 * e->kind, parent (listed, for STORE_INCR; 0 for STORE_FULL), time_ns,
 * pages and pause_ns; the store sets e->id (p's), bytes and hash (from the
 * file's content, read back: the listing describes the bytes the file
 * system has, whatever the writer thinks it wrote) and chain_pos.
 * p is ended either way. On failure nothing is listed, the file is gone,
 * and err says which step failed; a full file system is -ENOSPC with
 * "DIR: no space left while writing checkpoint N". The one exception is a
 * failed fsync of DIR after the new manifest was renamed into place: then
 * the checkpoint is listed but may not survive a power loss, and err says so.
 */
int store__commit(struct store *st, struct store_pending *p, struct store_entry *e,
		  char *err, size_t errlen);
/*
 * Compaction: commits p as e, a base (STORE_FULL) that stands for the
 * state of the newest checkpoint of a chain, and in the same manifest
 * transaction delists drop, which must be exactly that chain (base first
 * or in any order; store__chain() of its newest member). Checkpoints whose
 * parent was that newest member are re-parented onto e (the manifest is
 * the authority on parents: an increment applies to the state its parent
 * stands for), their descendants' chain_pos shortened. A listed checkpoint
 * depending on any other dropped one makes it fail (KM_ERR_STATE), as does
 * a drop that is no chain (KM_ERR_INVALID). The dropped files are unlinked
 * after the transaction (one that will not go is left to store__gc()).
 * Give e->time_ns the time of the checkpoint it stands for: retention
 * orders by it. Otherwise as store__commit().
 */
int store__commit_replacing(struct store *st, struct store_pending *p, struct store_entry *e,
			    const uint64_t *drop, size_t ndrop, char *err, size_t errlen);
/* Ends p without listing it: its temporary file is removed. NULL-safe, idempotent. */
void store__abort(struct store *st, struct store_pending *p);

/*
 * The chain that restores checkpoint id: ids[] gets base first, id last;
 * *len is the capacity of ids on entry (n always suffices) and the chain's
 * length on return. e[] is sorted by ascending id (as store__list() gives
 * it; KM_ERR_INVALID if not). -ENOENT if id is not listed; KM_ERR_CORRUPT
 * if the chain is broken ("checkpoint 17: its parent 15 is missing"),
 * loops or has a wrong chain_pos; KM_ERR_TOO_LARGE if *len is too small.
 */
int store__chain(const struct store_entry *e, size_t n, uint64_t id, uint64_t *ids, size_t *len,
		 char *err, size_t errlen);

/*
 * The size and XXH3-64 (seed 0) of the whole file fd refers to, read with
 * pread (the offset is left alone): what a manifest entry's bytes and hash
 * say. KM_ERR_STATE if fd is no regular file, KM_ERR_TRUNCATED if it
 * shrinks while read.
 */
int store__file_hash(int fd, uint64_t *bytes, uint64_t *hash);

/*
 * "DIR/ckpt-NNNNNNNN.kmc" for readers. KM_ERR_INVALID for an id out of
 * range. A checkpoint removed since the list was read is gone (ENOENT on
 * open): list again. An open file stays readable whatever is removed.
 */
int store__path(struct store *st, uint64_t id, char *out, size_t outlen);

/*
 * Removes checkpoints ids: one manifest transaction delists them all (or
 * none: -ENOENT if one is not listed, KM_ERR_STATE if a checkpoint that
 * stays depends on one), then their files are unlinked and DIR fsync'd.
 * A file left by a failure or crash after the transaction is store__gc()'s.
 */
int store__remove(struct store *st, const uint64_t *ids, size_t n, char *err, size_t errlen);

/*
 * Retention: which ids to delete so that the newest keep checkpoints stay
 * restorable. Newest means by time_ns (the time the guest state was taken:
 * a compacted base has the time of the state it stands for), ties by id.
 * Kept: those and every ancestor they need; deleted: everything else, in
 * ascending id order into del (room for n), *ndel how many. Never deletes
 * an ancestor of a kept checkpoint. e[] sorted by ascending id
 * (KM_ERR_INVALID if not). Pure: touches no file. 0 or -ENOMEM.
 */
int store__prune_plan(const struct store_entry *e, size_t n, unsigned int keep, uint64_t *del,
		      size_t *ndel);

/*
 * Removes what crashes leave: ckpt files the manifest does not list and
 * temporary files, both only if no live writer holds their lock, and a
 * manifest.tmp (a transaction that died; live ones hold DIR/lock, which
 * gc takes too). Never a listed file. The ids of removed files stay
 * reserved (the manifest's next id is raised first). *removed: how many.
 */
int store__gc(struct store *st, unsigned int *removed, char *err, size_t errlen);

#ifdef KM_FAULT_INJECTION
/*
 * Test builds only (--enable-fault-injection): the process SIGKILLs itself
 * at the step named by KVM_MIGRATE_STORE_CRASH, one of store__crash_points
 * (NULL-terminated). Elsewhere the steps compile to nothing.
 */
extern const char *const store__crash_points[];
#endif

#endif
