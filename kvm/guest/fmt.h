/*
 * A small snprintf for guest console messages. Conversions: %d %i %u %x %X
 * %c %s %p %%, with the flags '-' and '0', a decimal width, and the length
 * modifiers l, ll and z. Anything else is copied as is. Pure code, compared
 * against the C library's snprintf on the host.
 */
#ifndef KM_GUEST_FMT_H
#define KM_GUEST_FMT_H

#include <stdarg.h>
#include <stddef.h>

/*
 * Like vsnprintf: writes at most size bytes including the NUL (when size >
 * 0) and returns the length the whole text would have had.
 */
int fmt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int fmt_snprintf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
