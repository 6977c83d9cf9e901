/*
 * Compaction (kvm-snapshot compact): the chain of a checkpoint, merged
 * into one base that stands for it, written and committed in place of the
 * chain in one manifest transaction (store__commit_replacing): the state
 * and memory it restores are the checkpoint's, restores no longer read
 * the chain, and its files go. Online-safe: a VM that keeps checkpointing
 * into the store goes on (its next checkpoint is a base if the one it
 * would build on was compacted away), and a crash at any instant leaves
 * either the chain or the base listed, never neither.
 */
#ifndef KM_COMPACT_H
#define KM_COMPACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

struct compact_result {
	uint64_t id;		/* the new base */
	unsigned int merged;	/* files of the chain it replaced */
	uint64_t pages, bytes, bytes_before;
};

/*
 * Merges the chain of checkpoint top. KM_ERR_STATE if top is a base
 * already (nothing to merge) or something outside the chain depends on
 * one of its members other than top; the reason in err.
 */
int compact__chain(struct store *st, uint64_t top, bool compress, struct compact_result *res,
		   char *err, size_t errlen);

#endif
