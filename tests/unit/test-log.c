/* Unit tests for lib/log.c: one bounded line per message, levels, errno. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"
#include "log.h"

static char out[4096];

/* Runs what logs with stderr sent to a pipe; out holds what was written. */
#define CAPTURE(stmt) do {						\
	int fds_[2], saved_;						\
	ssize_t n_;							\
									\
	assert_int_equal(pipe2(fds_, O_NONBLOCK), 0);			\
	saved_ = dup(STDERR_FILENO);					\
	dup2(fds_[1], STDERR_FILENO);					\
	stmt;								\
	dup2(saved_, STDERR_FILENO);					\
	close(saved_);							\
	close(fds_[1]);							\
	n_ = read(fds_[0], out, sizeof(out) - 1);			\
	out[n_ > 0 ? n_ : 0] = '\0';					\
	close(fds_[0]);							\
} while (0)

static void test_line_format(void **state)
{
	char want[64];

	log_init("/usr/bin/kvm-run", LOG_INFO);
	CAPTURE(log_error("vcpu %d: %s", 3, "triple fault"));
	snprintf(want, sizeof(want), " kvm-run[%ld]: error: vcpu 3: triple fault\n",
		 (long)getpid());
	if (strstr(out, want) == NULL)
		fail_msg("got \"%s\", want it to contain \"%s\"", out, want);
	assert_int_equal(strchr(out, '\n') - out, strlen(out) - 1);

	/* A message's own trailing newline is not doubled. */
	CAPTURE(log_warn("slow\n"));
	assert_non_null(strstr(out, ": warning: slow\n"));
	assert_int_equal(strchr(out, '\n') - out, strlen(out) - 1);
}

static void test_levels(void **state)
{
	log_init("t", LOG_INFO);
	CAPTURE(log_debug("hidden"));
	assert_string_equal(out, "");
	CAPTURE(log_info("shown"));
	assert_non_null(strstr(out, "info: shown"));
	log_init("t", LOG_DEBUG);
	CAPTURE(log_debug("now shown"));
	assert_non_null(strstr(out, "debug: now shown"));
	/* An out-of-range level (e.g. syslog's LOG_DEBUG == 7) is debug. */
	log_init("t", LOG_INFO);
	CAPTURE(log_msg((enum log_level)7, "not shown"));
	assert_string_equal(out, "");
}

static void test_long_message_is_one_line(void **state)
{
	static char big[3000];

	memset(big, 'x', sizeof(big) - 1);
	log_init("t", LOG_INFO);
	CAPTURE(log_error("%s", big));
	assert_true(strlen(out) < sizeof(big));
	assert_int_equal(out[strlen(out) - 1], '\n');
	assert_int_equal(strchr(out, '\n') - out, strlen(out) - 1);
}

static void test_errno_preserved(void **state)
{
	log_init("t", LOG_INFO);
	errno = ENOSPC;
	CAPTURE(log_error("disk full"));
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(km_errno(), -ENOSPC);
	errno = 0;
	assert_int_equal(km_errno(), -EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_format),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_long_message_is_one_line),
		cmocka_unit_test(test_errno_preserved),
	};

	/* Keep TAP lines (stdout) in order with failure messages (stderr). */
	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
