/*
 * The workload arguments of the boot info: "key=value,key=value", e.g.
 * "rate=20000,wss=256M,pattern=zipf". Spaces around items are ignored,
 * empty items are skipped, and when a key repeats the last one counts.
 * The text is only read, never modified (the boot info page is read-only
 * to the guest), so values come back as spans. Pure code.
 */
#ifndef KM_GUEST_ARGS_H
#define KM_GUEST_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* 1 and the value's span if key is present, 0 if absent. */
int args_find(const char *args, const char *key, const char **val, size_t *len);

/*
 * 0 if every item is "key=value" with a key in known (NULL-terminated);
 * otherwise 1 and the span of the first offending item.
 */
int args_unknown(const char *args, const char *const *known, const char **item,
		 size_t *len);

/* A decimal number that fits in 64 bits. 0, or -1 (empty, junk, overflow). */
int args_parse_u64(const char *s, size_t len, uint64_t *out);

/*
 * A size in bytes: a decimal number with an optional binary suffix K, M, G
 * or T (either case), optionally followed by "B" or "iB": 4096, 64K, 256M,
 * 2GiB. 0, or -1 (empty, junk, overflow).
 */
int args_parse_size(const char *s, size_t len, uint64_t *out);

/* 1 if the span is exactly word. */
int args_equal(const char *s, size_t len, const char *word);

#endif
