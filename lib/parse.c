/*
 * Command-line values (see parse.h). strtoull() alone is too forgiving for
 * sizes an operator types: it skips blanks, accepts a sign (and negates
 * "-1" into a huge value) and reports overflow only through errno, so the
 * digits are checked here before it is called.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "parse.h"

/* Leading decimal digits of s into *out; *end after them. */
static int parse_digits(const char *s, uint64_t *out, const char **end)
{
	unsigned long long v;
	char *e;

	if (s == NULL || *s < '0' || *s > '9')
		return KM_ERR_INVALID;
	errno = 0;
	v = strtoull(s, &e, 10);
	if (errno != 0)
		return KM_ERR_INVALID;
	*out = v;
	*end = e;
	return 0;
}

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	const char *end;
	uint64_t v;
	int r;

	if ((r = parse_digits(s, &v, &end)) != 0)
		return r;
	if (*end != '\0' || v < min || v > max)
		return KM_ERR_INVALID;
	*out = v;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	const char *end;
	unsigned int shift = 0;
	uint64_t v;
	int r;

	if ((r = parse_digits(s, &v, &end)) != 0)
		return r;
	switch (*end) {
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	}
	if (shift != 0) {
		end++;
		/* "64K", "64KB" and "64KiB" all mean 65536. */
		if (strcmp(end, "iB") == 0)
			end += 2;
		else if (strcmp(end, "B") == 0)
			end++;
	} else if (strcmp(end, "B") == 0) {
		end++;		/* "4096B" */
	}
	if (*end != '\0')
		return KM_ERR_INVALID;
	if (v > (UINT64_MAX >> shift))
		return KM_ERR_INVALID;
	*out = v << shift;
	return 0;
}
