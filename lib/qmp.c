/*
 * QMP-style JSON-lines framing (see qmp.h). Requests are checked strictly
 * (duplicate or unknown members are errors) because a control socket is a
 * trust boundary: a typo in a member name should fail loudly rather than
 * run the command with defaults.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "qmp.h"

/* A maximal line and its "\n". */
#define QMP_LB_SIZE	(QMP_MAX_LINE + 1)
/* How much of an unknown member name an error message quotes. */
#define QMP_KEY_QUOTE	48

static void qmp_errf(char *errbuf, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * The reason may quote the peer's bytes (jansson's "near '...'"), and it
 * ends up in logs: control characters become '?' so it stays one line.
 */
static void qmp_errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	char *p;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
	for (p = errbuf; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
}

/*
 * A peer's member name, made safe to quote in a log line or an error
 * reply: printable ASCII without quotes, bounded length.
 */
static void qmp_quote_key(const char *key, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; key[i] != '\0' && i + 1 < outlen; i++) {
		unsigned char c = (unsigned char)key[i];

		out[i] = (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
	}
	out[i] = '\0';
	if (key[i] != '\0' && i >= 3)
		memcpy(out + i - 3, "...", 3);
}

static int qmp_valid_name(const char *s)
{
	for (; *s != '\0'; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return 0;
	}
	return 1;
}

void qmp_request_free(struct qmp_request *req)
{
	if (req == NULL)
		return;
	json_decref(req->arguments);
	json_decref(req->id);
	memset(req, 0, sizeof(*req));
}

int qmp_parse_request(const char *line, size_t len, struct qmp_request *req,
		      char *errbuf, size_t errlen)
{
	char quoted[QMP_KEY_QUOTE];
	json_error_t jerr;
	json_t *root = NULL, *v, *exec = NULL;
	const char *key, *nul;
	size_t n;
	int r = KM_ERR_INVALID;

	qmp_errf(errbuf, errlen, "%s", "");
	if (req == NULL)
		return KM_ERR_INVALID;
	memset(req, 0, sizeof(*req));
	if (line == NULL && len > 0) {
		qmp_errf(errbuf, errlen, "no request");
		goto out;
	}
	if (len == 0) {
		qmp_errf(errbuf, errlen, "empty request");
		goto out;
	}
	/* jansson would stop at a NUL or reject it with a vaguer message. */
	if ((nul = memchr(line, '\0', len)) != NULL) {
		qmp_errf(errbuf, errlen, "NUL byte at column %zu",
			 (size_t)(nul - line) + 1);
		goto out;
	}
	root = json_loadb(line, len,
			  JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (root == NULL) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			r = -ENOMEM;
		qmp_errf(errbuf, errlen, "invalid JSON at column %d: %s",
			 jerr.column, jerr.text);
		goto out;
	}
	if (!json_is_object(root)) {
		qmp_errf(errbuf, errlen, "a request must be a JSON object");
		goto out;
	}
	json_object_foreach(root, key, v) {
		if (strcmp(key, "execute") == 0) {
			exec = v;
		} else if (strcmp(key, "arguments") == 0) {
			if (!json_is_object(v)) {
				qmp_errf(errbuf, errlen, "\"arguments\" must be an object");
				goto out;
			}
			req->arguments = json_incref(v);
		} else if (strcmp(key, "id") == 0) {
			req->id = json_incref(v);
		} else {
			qmp_quote_key(key, quoted, sizeof(quoted));
			qmp_errf(errbuf, errlen, "unknown member \"%s\"", quoted);
			goto out;
		}
	}
	if (exec == NULL) {
		qmp_errf(errbuf, errlen, "missing \"execute\"");
		goto out;
	}
	if (!json_is_string(exec)) {
		qmp_errf(errbuf, errlen, "\"execute\" must be a string");
		goto out;
	}
	n = json_string_length(exec);
	if (n == 0 || n >= sizeof(req->execute)) {
		qmp_errf(errbuf, errlen, "\"execute\" must be 1 to %zu characters",
			 sizeof(req->execute) - 1);
		goto out;
	}
	/* A name, not free text: it is logged and used to look up a handler. */
	if (!qmp_valid_name(json_string_value(exec))) {
		qmp_errf(errbuf, errlen,
			 "\"execute\" may only contain letters, digits, '_' and '-'");
		goto out;
	}
	memcpy(req->execute, json_string_value(exec), n + 1);
	if (req->arguments == NULL && (req->arguments = json_object()) == NULL) {
		r = -ENOMEM;
		qmp_errf(errbuf, errlen, "out of memory");
		goto out;
	}
	r = 0;
out:
	if (r != 0)
		qmp_request_free(req);
	json_decref(root);
	return r;
}

/*
 * Serialises obj (consumed) into one malloc'd line. json_dumpb() writes
 * into our own allocation, so callers free() the result whatever allocator
 * jansson was given; JSON_COMPACT emits no newline, and newlines inside
 * strings are escaped, so the only "\n" is the one appended here.
 */
static char *qmp_line(json_t *obj)
{
	char *line = NULL;
	size_t n;

	if (obj == NULL)
		return NULL;
	n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
	if (n == 0 || n > SIZE_MAX - 2)
		goto out;
	if ((line = malloc(n + 2)) == NULL)
		goto out;
	if (json_dumpb(obj, line, n, JSON_COMPACT) != n) {
		free(line);
		line = NULL;
		goto out;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
out:
	json_decref(obj);
	return line;
}

/* Adds "id" (copied) unless id is NULL; 0 or -ENOMEM. */
static int qmp_set_id(json_t *obj, const json_t *id)
{
	if (id == NULL)
		return 0;
	return json_object_set_new(obj, "id", json_deep_copy(id)) == 0 ? 0 : -ENOMEM;
}

/* Bytes that are not UTF-8 become '?', so that the reply still goes out. */
json_t *qmp_string(const char *s)
{
	json_t *j;
	char *copy;
	size_t i;

	if (s == NULL)
		return NULL;
	if ((j = json_string(s)) != NULL)
		return j;
	if ((copy = strdup(s)) == NULL)
		return NULL;
	for (i = 0; copy[i] != '\0'; i++) {
		if ((unsigned char)copy[i] >= 0x80)
			copy[i] = '?';
	}
	j = json_string(copy);
	free(copy);
	return j;
}

char *qmp_reply_return(json_t *ret, const json_t *id)
{
	json_t *obj;

	if (ret == NULL && (ret = json_object()) == NULL)
		return NULL;
	if ((obj = json_object()) == NULL) {
		json_decref(ret);
		return NULL;
	}
	if (json_object_set_new(obj, "return", ret) != 0 || qmp_set_id(obj, id) != 0) {
		json_decref(obj);
		return NULL;
	}
	return qmp_line(obj);
}

char *qmp_reply_error(const char *class_, const char *desc, const json_t *id)
{
	json_t *obj, *err;

	if ((obj = json_object()) == NULL)
		return NULL;
	if ((err = json_object()) == NULL ||
	    json_object_set_new(obj, "error", err) != 0 ||
	    json_object_set_new(err, "class",
				qmp_string(class_ != NULL ? class_ : "GenericError")) != 0 ||
	    json_object_set_new(err, "desc", qmp_string(desc != NULL ? desc : "")) != 0 ||
	    qmp_set_id(obj, id) != 0) {
		json_decref(obj);
		return NULL;
	}
	return qmp_line(obj);
}

char *qmp_event(const char *name, json_t *data)
{
	struct timespec ts;
	json_t *obj, *stamp;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (data == NULL && (data = json_object()) == NULL)
		return NULL;
	if ((obj = json_object()) == NULL) {
		json_decref(data);
		return NULL;
	}
	/* "event" first, as QMP prints it; data is not in obj yet, so freed on its own. */
	if (json_object_set_new(obj, "event", qmp_string(name != NULL ? name : "")) != 0) {
		json_decref(data);
		json_decref(obj);
		return NULL;
	}
	/* json_object_set_new() steals data even when it fails. */
	if (json_object_set_new(obj, "data", data) != 0) {
		json_decref(obj);
		return NULL;
	}
	if ((stamp = json_pack("{sIsI}", "seconds", (json_int_t)ts.tv_sec,
			       "microseconds", (json_int_t)(ts.tv_nsec / 1000))) == NULL ||
	    json_object_set_new(obj, "timestamp", stamp) != 0) {
		json_decref(obj);
		return NULL;
	}
	return qmp_line(obj);
}

struct qmp_linebuf {
	size_t start;		/* first unread byte */
	size_t end;		/* end of the bytes read */
	size_t scan;		/* [start, scan) is known to hold no "\n" */
	int discarding;		/* dropping the rest of an over-long line */
	int too_large;		/* an over-long line is still to be reported */
	int eof;		/* the peer has closed its side */
	char data[QMP_LB_SIZE + 1];	/* + the NUL after a last line without "\n" */
};

struct qmp_linebuf *qmp_linebuf_new(void)
{
	struct qmp_linebuf *lb;

	if ((lb = malloc(sizeof(*lb))) == NULL)
		return NULL;
	lb->start = lb->end = lb->scan = 0;
	lb->discarding = lb->too_large = lb->eof = 0;
	return lb;
}

void qmp_linebuf_free(struct qmp_linebuf *lb)
{
	free(lb);
}

static void qmp_linebuf_drop(struct qmp_linebuf *lb)
{
	lb->start = lb->end = lb->scan = 0;
}

int qmp_linebuf_fill(struct qmp_linebuf *lb, int fd)
{
	ssize_t n;

	if (lb == NULL)
		return KM_ERR_INVALID;
	if (lb->start > 0) {
		memmove(lb->data, lb->data + lb->start, lb->end - lb->start);
		lb->end -= lb->start;
		lb->scan -= lb->start;
		lb->start = 0;
	}
	if (lb->end == QMP_LB_SIZE) {
		/*
		 * Full: either the caller has not taken the complete lines
		 * (its bug; reading would lose nothing but could never make
		 * progress), or one line is longer than we accept, which
		 * next() reports before the discarded remainder.
		 */
		if (memchr(lb->data, '\n', lb->end) != NULL)
			return KM_ERR_NO_SPACE;
		qmp_linebuf_drop(lb);
		lb->discarding = 1;
		lb->too_large = 1;
	}
	do {
		n = read(fd, lb->data + lb->end, QMP_LB_SIZE - lb->end);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : km_errno();
	if (n == 0) {
		lb->eof = 1;
		return KM_ERR_END;
	}
	lb->end += (size_t)n;
	return 0;
}

int qmp_linebuf_next(struct qmp_linebuf *lb, const char **line, size_t *len)
{
	char *nl;
	size_t n;

	if (line != NULL)
		*line = NULL;
	if (len != NULL)
		*len = 0;
	if (lb == NULL)
		return KM_ERR_INVALID;
	if (lb->too_large) {
		lb->too_large = 0;
		return KM_ERR_TOO_LARGE;
	}
	for (;;) {
		nl = memchr(lb->data + lb->scan, '\n', lb->end - lb->scan);
		if (nl != NULL && lb->discarding) {
			/* The tail of an over-long line ends here. */
			lb->start = lb->scan = (size_t)(nl - lb->data) + 1;
			lb->discarding = 0;
			continue;
		}
		break;
	}
	if (nl != NULL) {
		n = (size_t)(nl - lb->data) - lb->start;
		*nl = '\0';
		goto take;
	}
	if (lb->discarding) {
		qmp_linebuf_drop(lb);
		return KM_ERR_TRUNCATED;
	}
	n = lb->end - lb->start;
	if (n > QMP_MAX_LINE) {
		qmp_linebuf_drop(lb);
		lb->discarding = 1;
		return KM_ERR_TOO_LARGE;
	}
	if (!lb->eof || n == 0) {
		lb->scan = lb->end;
		return KM_ERR_TRUNCATED;
	}
	/* The peer closed after a last line without "\n": still a line. */
	lb->data[lb->end] = '\0';
take:
	if (line != NULL)
		*line = lb->data + lb->start;
	if (len != NULL)
		*len = n;
	lb->start = lb->scan = lb->start + n + (lb->start + n < lb->end ? 1 : 0);
	return 0;
}
