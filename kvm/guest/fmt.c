/* A small snprintf (fmt.h). */
#include <stdint.h>

#include "fmt.h"

struct fmt_out {
	char *buf;
	size_t size;
	size_t len;	/* what the text would be; may exceed size */
};

static void fmt_putc(struct fmt_out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void fmt_pad(struct fmt_out *o, char c, int n)
{
	while (n-- > 0)
		fmt_putc(o, c);
}

/* s (n bytes) right- or left-justified in width, zero-padding after a sign. */
static void fmt_field(struct fmt_out *o, const char *s, int n, int width, int left,
		      char pad, int neg)
{
	int fill = width - n - neg;

	if (neg && pad == '0')
		fmt_putc(o, '-');
	if (!left)
		fmt_pad(o, pad, fill);
	if (neg && pad != '0')
		fmt_putc(o, '-');
	while (n-- > 0)
		fmt_putc(o, *s++);
	if (left)
		fmt_pad(o, ' ', fill);
}

static int fmt_digits(char *end, uint64_t v, unsigned int base, int upper)
{
	const char *d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char *p = end;

	do {
		*--p = d[v % base];
		v /= base;
	} while (v);
	return (int)(end - p);
}

int fmt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct fmt_out o = { buf, size, 0 };
	char tmp[24];	/* 2^64 in decimal is 20 digits */
	const char *s;
	int left, width, lng, n, neg;
	char pad;
	uint64_t v;
	int64_t sv;

	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			fmt_putc(&o, *fmt);
			continue;
		}
		fmt++;
		left = 0;
		pad = ' ';
		for (;; fmt++) {
			if (*fmt == '-')
				left = 1;
			else if (*fmt == '0')
				pad = '0';
			else
				break;
		}
		if (left)
			pad = ' ';
		for (width = 0; *fmt >= '0' && *fmt <= '9'; fmt++)
			width = width * 10 + (*fmt - '0');
		lng = 0;	/* int, long, long long, size_t */
		if (*fmt == 'z') {
			lng = 3;
			fmt++;
		} else {
			while (*fmt == 'l' && lng < 2) {
				lng++;
				fmt++;
			}
		}
		neg = 0;
		switch (*fmt) {
		case 'd':
		case 'i':
			if (lng == 0)
				sv = va_arg(ap, int);
			else if (lng == 1)
				sv = va_arg(ap, long);
			else if (lng == 2)
				sv = va_arg(ap, long long);
			else
				sv = (int64_t)va_arg(ap, size_t);	/* %zd: ssize_t */
			neg = sv < 0;
			v = neg ? (uint64_t)0 - (uint64_t)sv : (uint64_t)sv;
			n = fmt_digits(tmp + sizeof(tmp), v, 10, 0);
			fmt_field(&o, tmp + sizeof(tmp) - n, n, width, left, pad, neg);
			break;
		case 'u':
		case 'x':
		case 'X':
			if (lng == 0)
				v = va_arg(ap, unsigned int);
			else if (lng == 1)
				v = va_arg(ap, unsigned long);
			else if (lng == 2)
				v = va_arg(ap, unsigned long long);
			else
				v = va_arg(ap, size_t);
			n = fmt_digits(tmp + sizeof(tmp), v, *fmt == 'u' ? 10 : 16, *fmt == 'X');
			fmt_field(&o, tmp + sizeof(tmp) - n, n, width, left, pad, 0);
			break;
		case 'p':
			v = (uint64_t)(uintptr_t)va_arg(ap, void *);
			n = fmt_digits(tmp + sizeof(tmp), v, 16, 0);
			tmp[sizeof(tmp) - n - 1] = 'x';
			tmp[sizeof(tmp) - n - 2] = '0';
			fmt_field(&o, tmp + sizeof(tmp) - n - 2, n + 2, width, left, ' ', 0);
			break;
		case 'c':
			tmp[0] = (char)va_arg(ap, int);
			fmt_field(&o, tmp, 1, width, left, ' ', 0);
			break;
		case 's':
			s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			for (n = 0; s[n]; n++)
				;
			fmt_field(&o, s, n, width, left, ' ', 0);
			break;
		case '%':
			fmt_putc(&o, '%');
			break;
		case 0:
			fmt--;	/* a lone '%' at the end */
			break;
		default:
			fmt_putc(&o, '%');
			fmt_putc(&o, *fmt);
			break;
		}
	}
	if (size > 0)
		buf[o.len < size ? o.len : size - 1] = 0;
	return (int)o.len;
}

int fmt_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = fmt_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}
