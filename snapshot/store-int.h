/*
 * The checkpoint store's insides, shared by its files: store.c (names,
 * the lock, open, begin, commit), store-manifest.c (the manifest and its
 * transactions), store-gc.c (remove, gc) and store-chain.c (chains and
 * retention, pure). The contract is store.h's; each function is described
 * where it is defined.
 */
#ifndef KM_STORE_INT_H
#define KM_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "record.h"
#include "snapshot/store.h"

#define STORE_MANIFEST		"manifest"
#define STORE_MANIFEST_TMP	"manifest.tmp"
#define STORE_LOCK		"lock"
#define STORE_REC_MAX		4096		/* one manifest record's payload, bounded */
#define STORE_HDR_BYTES		(REC_HDR_SIZE + 8 + 3 * 16)
#define STORE_ENTRY_BYTES	(REC_HDR_SIZE + 9 * 16)
#define STORE_HASH_CHUNK	(1U << 20)

struct store {
	int dfd;		/* DIR, O_DIRECTORY: every name is resolved from it */
	char dir[4096];		/* as given, for messages and store__path() */
};

/* The manifest as a transaction or a reader holds it. */
struct store_manifest {
	struct store_entry *e;	/* ascending ids */
	size_t n, cap;
	uint64_t next_id;	/* above every id ever given out */
};

enum store_name {
	STORE_NAME_OTHER,
	STORE_NAME_CKPT,	/* ckpt-NNNNNNNN.kmc */
	STORE_NAME_TMP,		/* .ckpt-NNNNNNNN.PID.tmp */
	STORE_NAME_MANIFEST,
	STORE_NAME_MANIFEST_TMP,
	STORE_NAME_LOCK,
};

typedef int store_scan_fn(const struct store *st, const char *name, enum store_name kind,
			  uint64_t id, void *ctx, char *err, size_t errlen);

typedef int store_change_fn(const struct store *st, struct store_manifest *m, void *ctx,
			    char *err, size_t errlen);

#ifdef KM_FAULT_INJECTION
void store__crash_point(const char *name);
bool store__fault(const char *name);
#else
#define store__crash_point(name) do { } while (0)
#define store__fault(name) false
#endif

/* store.c: names and files, the lock. */
int store__fail(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int store__check_stat(const struct store *st, const char *name, const struct stat *sb,
		      char *err, size_t errlen);
int store__check_fd(const struct store *st, const char *name, int fd, char *err,
		    size_t errlen);
int store__sync_dir(const struct store *st);
int store__write_all(int fd, const uint8_t *p, size_t len);
int store__scan(const struct store *st, store_scan_fn *fn, void *ctx, char *err,
		size_t errlen);
int store__lock(const struct store *st, int *lockfd, char *err, size_t errlen);
void store__unlock(int lockfd);

/* store.c: sorted id lists, the files of removed ids. */
bool store__in(const uint64_t *sorted, size_t n, uint64_t id);
int store__sorted_ids(const uint64_t *ids, size_t n, uint64_t **out, size_t *nout);
void store__m_drop(struct store_manifest *m, const uint64_t *sorted, size_t n);
unsigned int store__unlink_ids(const struct store *st, const uint64_t *ids, size_t n,
			       int *r, char *err, size_t errlen);

/* store-manifest.c: the manifest. */
struct store_entry *store__find(const struct store_entry *e, size_t n, uint64_t id);
bool store__sorted(const struct store_entry *e, size_t n);
int store__m_insert(struct store_manifest *m, const struct store_entry *e);
int store__read_manifest(const struct store *st, struct store_manifest *m, char *err,
			 size_t errlen);
int store__write_manifest(const struct store *st, const struct store_manifest *m,
			  bool *renamed, char *err, size_t errlen);
int store__transact(const struct store *st, store_change_fn *change, void *ctx,
		    bool *renamed, char *err, size_t errlen);

#endif
