/*
 * Shared by the unit tests: cmocka's headers in the order it needs them,
 * and assertions that name the error codes that differed, not just their
 * numbers.
 */
#ifndef KM_UNIT_H
#define KM_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "err.h"

/* Fails with the expression and both codes spelled out. */
#define assert_err(expr, want) do {					\
	int got_ = (expr), want_ = (want);				\
	if (got_ != want_)						\
		fail_msg("%s\n  got  %d (%s)\n  want %d (%s)", #expr,	\
			 got_, km_strerror(got_), want_,		\
			 km_strerror(want_));				\
} while (0)

#define assert_ok(expr) assert_err(expr, 0)

#endif
