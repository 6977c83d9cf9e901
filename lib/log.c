/*
 * Logging to stderr. Each message is formatted into one bounded line and
 * written with a single write(2), so lines from vCPU threads and the main
 * thread never interleave mid-line and no lock is needed.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX	1024

static char log_prog[32] = "kvm-migrate";
static enum log_level log_level = LOG_INFO;

static const char *const log_level_name[] = {
	[LOG_ERROR]	= "error",
	[LOG_WARN]	= "warning",
	[LOG_INFO]	= "info",
	[LOG_DEBUG]	= "debug",
};

/* Not thread-safe: call from main() before starting threads. */
void log_init(const char *prog, enum log_level level)
{
	const char *slash;

	if (prog != NULL) {
		slash = strrchr(prog, '/');
		if (slash != NULL)
			prog = slash + 1;
		snprintf(log_prog, sizeof(log_prog), "%s", prog);
	}
	log_level = level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	size_t n = 0;
	va_list ap;
	int saved_errno = errno;	/* callers log, then look at errno */
	int r;

	/*
	 * The level is checked as an unsigned index: <syslog.h> defines
	 * LOG_INFO and LOG_DEBUG as macros with other values, and a caller
	 * who includes it after log.h passes those.
	 */
	if ((unsigned int)level > (unsigned int)LOG_DEBUG)
		level = LOG_DEBUG;
	if (level > log_level)
		goto out;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ld %s[%ld]: %s: ",
		     ts.tv_nsec / 1000000, log_prog, (long)getpid(),
		     log_level_name[level]);
	if (r < 0)
		goto out;
	n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;

	va_start(ap, fmt);
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (r < 0)
		goto out;
	n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;

	/* A truncated message still ends its line; one newline only. */
	if (n > 0 && line[n - 1] == '\n')
		n--;
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';

	/* Best effort: a failed write to stderr has nowhere to be reported. */
	while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR)
		;
out:
	errno = saved_errno;
}
