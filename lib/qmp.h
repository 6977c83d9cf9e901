/*
 * QMP-style JSON-lines framing for the control sockets: one JSON object
 * per line in each direction, requests {"execute", "arguments", "id"},
 * replies {"return"} or {"error": {"class", "desc"}}, and asynchronous
 * {"event"} lines. Only the framing lives here; what the commands do is
 * the business of whoever owns the socket.
 */
#ifndef KM_QMP_H
#define KM_QMP_H

#include <stddef.h>

#include <jansson.h>

/* The longest accepted line, without its "\n". */
#define QMP_MAX_LINE (64 * 1024)

struct qmp_request {
	char execute[64];	/* command name */
	json_t *arguments;	/* a JSON object, never NULL after a successful parse; owned */
	json_t *id;		/* optional "id" member, echoed in the reply; owned, may be NULL */
};

/*
 * Parses one request line {"execute": "name", "arguments": {...}, "id": any}.
 * "arguments" may be omitted (an empty object is supplied); "execute" must
 * be 1..63 characters of [A-Za-z0-9_-]; duplicate and unknown members are
 * refused. 0 on success; on failure KM_ERR_INVALID, req zeroed, and a
 * human-readable reason in errbuf (e.g. "invalid JSON at column 7: ...",
 * "missing \"execute\"", "\"arguments\" must be an object",
 * "unknown member \"foo\""); errbuf may be NULL. -ENOMEM if out of memory.
 * Never reads past len; a NUL inside the line is an error.
 */
int qmp_parse_request(const char *line, size_t len, struct qmp_request *req,
		      char *errbuf, size_t errlen);
/* NULL-safe; leaves req zeroed. */
void qmp_request_free(struct qmp_request *req);

/*
 * Reply lines, each a malloc'd NUL-terminated string ending in "\n" with no
 * other newline (the caller free()s it); NULL if out of memory. ret is
 * stolen even on failure (NULL means {}); id is borrowed (copied; NULL
 * means no "id" member).
 */
char *qmp_reply_return(json_t *ret, const json_t *id);
/*
 * {"error": {"class": class_, "desc": desc}, "id": id}. class_ NULL means
 * "GenericError". desc may come from a peer: bytes that are not valid
 * UTF-8 are replaced by '?' rather than failing.
 */
char *qmp_reply_error(const char *class_, const char *desc, const json_t *id);
/*
 * {"event": name, "data": data, "timestamp": {"seconds", "microseconds"}}
 * with the wall-clock time of the call; data stolen (NULL means {}).
 */
char *qmp_event(const char *name, json_t *data);

/*
 * A JSON string for text that came from a peer or the system (an error
 * message, a path), which may not be UTF-8 as jansson requires: such bytes
 * become '?' rather than failing. NULL only if out of memory (or s NULL).
 */
json_t *qmp_string(const char *s);

/* A bounded line reader for a stream fd (non-blocking or blocking). */
struct qmp_linebuf;	/* opaque; holds at most one maximal line and its "\n" */

/* NULL if out of memory. */
struct qmp_linebuf *qmp_linebuf_new(void);
/* NULL-safe. */
void qmp_linebuf_free(struct qmp_linebuf *lb);
/*
 * Reads what is available from fd (one read(2), retried on EINTR).
 * 0 when data was read, -EAGAIN, or KM_ERR_END at EOF, or -errno.
 * Call qmp_linebuf_next() until it returns KM_ERR_TRUNCATED before the
 * next fill; if complete lines are still buffered and there is no room,
 * this returns KM_ERR_NO_SPACE without reading.
 */
int qmp_linebuf_fill(struct qmp_linebuf *lb, int fd);
/*
 * Takes the next complete line (without its "\n", NUL-terminated, valid
 * until the next call on lb). 0 and the line; KM_ERR_TRUNCATED if no
 * complete line yet; KM_ERR_TOO_LARGE once for a line that exceeds
 * QMP_MAX_LINE (the reader then discards up to the next newline so the
 * connection can continue after an error reply). After fill has returned
 * KM_ERR_END, a last line without "\n" is returned as a complete line.
 */
int qmp_linebuf_next(struct qmp_linebuf *lb, const char **line, size_t *len);

#endif
