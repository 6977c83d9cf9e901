/*
 * Logging to stderr with a timestamp and the program name, one write(2)
 * per message (at most 1 KiB, truncated beyond), safe from any thread;
 * errno is preserved. Do not include <syslog.h> next to this header: it
 * defines LOG_INFO and LOG_DEBUG as macros.
 */
#ifndef KM_LOG_H
#define KM_LOG_H

/* LOG_NONE: not even errors (for log_init only: a fuzzer's million refusals). */
enum log_level { LOG_NONE = -1, LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Call once from main() before threads start; prog may be argv[0]. Default: info. */
void log_init(const char *prog, enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...)	log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)	log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
