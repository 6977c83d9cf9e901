/* key=value argument parsing (args.h). */
#include "args.h"

struct args_item {
	const char *key, *val;	/* val is NULL for an item without '=' */
	size_t key_len, val_len;
	const char *item;
	size_t item_len;
};

static int args_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Trims spaces from both ends of [*s, *s + *len). */
static void args_trim(const char **s, size_t *len)
{
	while (*len > 0 && args_space(**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && args_space((*s)[*len - 1]))
		(*len)--;
}

/*
 * The next non-empty item at or after *pos; advances *pos past it.
 * 0 at the end of the text.
 */
static int args_next(const char **pos, struct args_item *it)
{
	const char *p = *pos, *start, *eq;
	size_t len;

	do {
		if (!*p)
			return 0;
		start = p;
		while (*p && *p != ',')
			p++;
		len = (size_t)(p - start);
		if (*p == ',')
			p++;
		args_trim(&start, &len);
	} while (len == 0);
	*pos = p;
	it->item = start;
	it->item_len = len;
	for (eq = start; eq < start + len && *eq != '='; eq++)
		;
	it->key = start;
	it->key_len = (size_t)(eq - start);
	args_trim(&it->key, &it->key_len);
	if (eq == start + len) {
		it->val = NULL;
		it->val_len = 0;
	} else {
		it->val = eq + 1;
		it->val_len = (size_t)(start + len - it->val);
		args_trim(&it->val, &it->val_len);
	}
	return 1;
}

int args_equal(const char *s, size_t len, const char *word)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (word[i] != s[i])	/* also stops at word's NUL */
			return 0;
	return word[len] == 0;
}

int args_find(const char *args, const char *key, const char **val, size_t *len)
{
	struct args_item it;
	const char *pos = args;
	int found = 0;

	while (args_next(&pos, &it)) {
		if (it.val && args_equal(it.key, it.key_len, key)) {
			*val = it.val;
			*len = it.val_len;
			found = 1;
		}
	}
	return found;
}

int args_unknown(const char *args, const char *const *known, const char **item,
		 size_t *len)
{
	struct args_item it;
	const char *pos = args;
	size_t i;

	while (args_next(&pos, &it)) {
		for (i = 0; it.val && known[i]; i++)
			if (args_equal(it.key, it.key_len, known[i]))
				break;
		if (!it.val || it.key_len == 0 || !known[i]) {
			*item = it.item;
			*len = it.item_len;
			return 1;
		}
	}
	return 0;
}

/* Parses leading digits; *used = how many. -1 on overflow or no digit. */
static int args_digits(const char *s, size_t len, uint64_t *out, size_t *used)
{
	uint64_t v = 0;
	size_t i;
	unsigned int d;

	for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		d = (unsigned int)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (i == 0)
		return -1;
	*out = v;
	*used = i;
	return 0;
}

int args_parse_u64(const char *s, size_t len, uint64_t *out)
{
	size_t used;
	uint64_t v;

	if (args_digits(s, len, &v, &used) != 0 || used != len)
		return -1;
	*out = v;
	return 0;
}

int args_parse_size(const char *s, size_t len, uint64_t *out)
{
	unsigned int shift = 0;
	size_t used;
	uint64_t v;

	if (args_digits(s, len, &v, &used) != 0)
		return -1;
	s += used;
	len -= used;
	if (len > 0) {
		switch (*s) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		case 't': case 'T': shift = 40; break;
		default: break;
		}
		if (shift) {
			s++;
			len--;
			if (!args_equal(s, len, "") && !args_equal(s, len, "B") &&
			    !args_equal(s, len, "iB"))
				return -1;
		} else if (!args_equal(s, len, "B")) {
			return -1;
		}
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -1;
	*out = v << shift;
	return 0;
}
