/* Parsing of command-line values: sizes with suffixes, numbers, key=value lists. */
#ifndef KM_PARSE_H
#define KM_PARSE_H

#include <stdint.h>

/*
 * "4096", "64K", "256M", "8G", "1T" (binary multiples; a trailing "B" or
 * "iB" is accepted) into bytes. KM_ERR_INVALID on anything else, including
 * overflow, empty strings, negative numbers and trailing garbage.
 */
int parse_size(const char *s, uint64_t *out);

/* A decimal unsigned integer in [min, max]; KM_ERR_INVALID otherwise. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
