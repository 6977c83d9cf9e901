/* Unit tests for lib/qmp.c: request parsing, reply lines, the line reader. */
#include "config.h"

#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"
#include "qmp.h"

/* Parses s (without its NUL) from an exact-size copy, so over-reads show. */
static int parse(const char *s, struct qmp_request *req, char *err, size_t errlen)
{
	size_t n = strlen(s);
	char *copy = malloc(n > 0 ? n : 1);
	int r;

	assert_non_null(copy);
	memcpy(copy, s, n);
	r = qmp_parse_request(copy, n, req, err, errlen);
	free(copy);
	return r;
}

static void test_valid_requests(void **state)
{
	struct qmp_request req;
	char err[256];
	json_t *want;

	assert_ok(parse("{\"execute\":\"query-status\"}", &req, err, sizeof(err)));
	assert_string_equal(req.execute, "query-status");
	assert_true(json_is_object(req.arguments));
	assert_int_equal(json_object_size(req.arguments), 0);
	assert_null(req.id);
	qmp_request_free(&req);
	assert_null(req.arguments);
	assert_int_equal(req.execute[0], '\0');

	assert_ok(parse(" { \"id\" : {\"seq\": [1, 2]}, \"arguments\": {\"uri\": \"unix:/x\", \"n\": 3},"
			"\"execute\": \"migrate\" }\r", &req, err, sizeof(err)));
	assert_string_equal(req.execute, "migrate");
	want = json_pack("{sssi}", "uri", "unix:/x", "n", 3);
	assert_true(json_equal(req.arguments, want));
	json_decref(want);
	want = json_pack("{s[ii]}", "seq", 1, 2);
	assert_true(json_equal(req.id, want));
	json_decref(want);
	qmp_request_free(&req);

	assert_ok(parse("{\"execute\":\"a_B-9\",\"id\":null,\"arguments\":{}}", &req, NULL, 0));
	assert_true(json_is_null(req.id));
	qmp_request_free(&req);

	/* The longest name that fits execute[64]. */
	assert_ok(parse("{\"execute\":\"" "0123456789012345678901234567890123456789"
			"01234567890123456789012" "\"}", &req, err, sizeof(err)));
	assert_int_equal(strlen(req.execute), 63);
	qmp_request_free(&req);
	qmp_request_free(NULL);
}

struct bad_case {
	const char *line;
	size_t len;		/* 0: strlen(line) */
	const char *reason;	/* a substring of the message */
};

static const struct bad_case bad_cases[] = {
	{ "", 0, "empty request" },
	{ "   ", 0, "invalid JSON at column" },
	{ "{", 0, "invalid JSON at column" },
	{ "not json", 0, "invalid JSON at column" },
	{ "{\"execute\":\"x\"} {\"execute\":\"y\"}", 0, "invalid JSON" },
	{ "{\"execute\":\"x\"}garbage", 0, "invalid JSON" },
	{ "{\"execute\":\"x\",}", 0, "invalid JSON" },
	{ "{\"execute\":\"x\",\"execute\":\"y\"}", 0, "duplicate" },
	{ "{\"execute\":\"x\\u0000y\"}", 0, "invalid JSON" },
	{ "{\"execute\":\"\xff\"}", 0, "invalid JSON" },
	{ "{\"execute\":\"x\"}\0", 16, "NUL byte at column 16" },
	{ "{\"exe\0cute\":\"x\"}", 16, "NUL byte at column 6" },
	{ "{\"execute\":\"query-status\"}", 10, "invalid JSON" },
	{ "[{\"execute\":\"x\"}]", 0, "must be a JSON object" },
	{ "42", 0, "must be a JSON object" },
	{ "\"execute\"", 0, "must be a JSON object" },
	{ "{}", 0, "missing \"execute\"" },
	{ "{\"arguments\":{},\"id\":1}", 0, "missing \"execute\"" },
	{ "{\"execute\":1}", 0, "\"execute\" must be a string" },
	{ "{\"execute\":null}", 0, "\"execute\" must be a string" },
	{ "{\"execute\":[\"x\"]}", 0, "\"execute\" must be a string" },
	{ "{\"execute\":\"\"}", 0, "\"execute\" must be 1 to 63 characters" },
	{ "{\"execute\":\"0123456789012345678901234567890123456789012345678901234567890123\"}", 0,
	  "\"execute\" must be 1 to 63 characters" },
	{ "{\"execute\":\"a b\"}", 0, "\"execute\" may only contain" },
	{ "{\"execute\":\"a/b\"}", 0, "\"execute\" may only contain" },
	{ "{\"execute\":\"caf\xc3\xa9\"}", 0, "\"execute\" may only contain" },
	{ "{\"execute\":\"x\",\"arguments\":[]}", 0, "\"arguments\" must be an object" },
	{ "{\"execute\":\"x\",\"arguments\":null}", 0, "\"arguments\" must be an object" },
	{ "{\"execute\":\"x\",\"arguments\":\"a=1\"}", 0, "\"arguments\" must be an object" },
	{ "{\"execute\":\"x\",\"foo\":1}", 0, "unknown member \"foo\"" },
	{ "{\"execute\":\"x\",\"a\\nb\\\"\":1}", 0, "unknown member \"a?b?\"" },
	{ "{\"execute\":\"x\",\"control\":{}}", 0, "unknown member \"control\"" },
};

static void test_malformed_requests(void **state)
{
	const struct bad_case *c;
	struct qmp_request req;
	char err[256];
	size_t i, len;
	char *copy;
	int r;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		c = &bad_cases[i];
		len = c->len != 0 ? c->len : strlen(c->line);
		copy = malloc(len > 0 ? len : 1);
		assert_non_null(copy);
		memcpy(copy, c->line, len);
		memset(&req, 0x5a, sizeof(req));
		strcpy(err, "untouched");
		r = qmp_parse_request(copy, len, &req, err, sizeof(err));
		free(copy);
		if (r != KM_ERR_INVALID || strstr(err, c->reason) == NULL)
			fail_msg("case %zu \"%s\": got %d (%s) \"%s\", want KM_ERR_INVALID \"%s\"",
				 i, c->line, r, km_strerror(r), err, c->reason);
		/* A failed parse leaves nothing to free. */
		assert_null(req.arguments);
		assert_null(req.id);
		assert_int_equal(req.execute[0], '\0');
	}
}

static void test_error_buffer_bounds(void **state)
{
	struct qmp_request req;
	char err[8];

	memset(err, 'x', sizeof(err));
	assert_err(parse("{\"execute\":\"x\",\"foo\":1}", &req, err, 4), KM_ERR_INVALID);
	assert_string_equal(err, "unk");
	assert_int_equal(err[4], 'x');
	assert_err(parse("{}", &req, NULL, 100), KM_ERR_INVALID);
	assert_err(parse("{}", &req, err, 0), KM_ERR_INVALID);
	assert_err(qmp_parse_request(NULL, 5, &req, err, sizeof(err)), KM_ERR_INVALID);
}

/* Checks the framing of a produced line and parses it back. */
static json_t *line_back(char *line)
{
	json_error_t jerr;
	size_t n;
	json_t *j;

	assert_non_null(line);
	n = strlen(line);
	assert_true(n >= 2);
	assert_int_equal(line[n - 1], '\n');
	if (memchr(line, '\n', n - 1) != NULL)
		fail_msg("a newline inside the line: %s", line);
	j = json_loadb(line, n, 0, &jerr);
	if (j == NULL)
		fail_msg("produced line is not JSON (%s): %s", jerr.text, line);
	free(line);
	return j;
}

static void test_reply_return(void **state)
{
	json_t *id = json_pack("{si}", "n", 7), *got, *want;
	size_t refs = id->refcount;

	got = line_back(qmp_reply_return(json_pack("{sis[s]}", "a", 1, "b", "x\ny"), id));
	want = json_pack("{s{sis[s]}s{si}}", "return", "a", 1, "b", "x\ny", "id", "n", 7);
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	assert_int_equal(id->refcount, refs);	/* borrowed, not kept */

	got = line_back(qmp_reply_return(NULL, NULL));
	want = json_pack("{s{}}", "return");
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);

	got = line_back(qmp_reply_return(json_pack("[ii]", 1, 2), json_object_get(id, "n")));
	want = json_pack("{s[ii]si}", "return", 1, 2, "id", 7);
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	json_decref(id);
}

static void test_reply_error(void **state)
{
	json_t *id = json_string("req-1"), *got, *want;

	got = line_back(qmp_reply_error("CommandNotFound", "The command foo has not been found", id));
	want = json_pack("{s{ssss}ss}", "error", "class", "CommandNotFound",
			 "desc", "The command foo has not been found", "id", "req-1");
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);

	/* Defaults, and bytes from a peer that are not UTF-8. */
	got = line_back(qmp_reply_error(NULL, "bad \xff\xfe name\nhere", NULL));
	want = json_pack("{s{ssss}}", "error", "class", "GenericError",
			 "desc", "bad ?? name\nhere");
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	json_decref(id);
}

static void test_string(void **state)
{
	json_t *j;

	j = qmp_string("/var/lib/ckpt \xc3\xa9t\xc3\xa9");	/* UTF-8: kept */
	assert_string_equal(json_string_value(j), "/var/lib/ckpt \xc3\xa9t\xc3\xa9");
	json_decref(j);
	j = qmp_string("/tmp/\xff\xfe/ck: No space");	/* not UTF-8: '?' */
	assert_string_equal(json_string_value(j), "/tmp/?" "?/ck: No space");
	json_decref(j);
	assert_null(qmp_string(NULL));
}

/* The clock qmp_event reads: time() may lag it by a tick (a coarse clock). */
static time_t now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

static void test_event(void **state)
{
	time_t before = now_sec(), after;
	json_t *got, *ts, *want;
	json_int_t sec, usec;

	got = line_back(qmp_event("MIGRATION", json_pack("{ss}", "status", "active")));
	after = now_sec();
	assert_string_equal(json_string_value(json_object_get(got, "event")), "MIGRATION");
	want = json_pack("{ss}", "status", "active");
	assert_true(json_equal(json_object_get(got, "data"), want));
	json_decref(want);
	ts = json_object_get(got, "timestamp");
	assert_true(json_is_integer(json_object_get(ts, "seconds")));
	sec = json_integer_value(json_object_get(ts, "seconds"));
	usec = json_integer_value(json_object_get(ts, "microseconds"));
	assert_in_range(sec, before, after);
	assert_in_range(usec, 0, 999999);
	assert_int_equal(json_object_size(got), 3);
	json_decref(got);

	got = line_back(qmp_event("STOP", NULL));
	assert_true(json_is_object(json_object_get(got, "data")));
	assert_int_equal(json_object_size(json_object_get(got, "data")), 0);
	json_decref(got);
}

/* jansson's allocations fail from the fail_at-th on (0: never). */
static unsigned int alloc_n, fail_at;

static void *failing_malloc(size_t n)
{
	if (fail_at && ++alloc_n >= fail_at)
		return NULL;
	return malloc(n);
}

/*
 * data is stolen whatever happens: made, or out of memory at any of
 * qmp_event's allocations, the caller's reference is the only one left.
 * (control__event hands over what an emitter built and never frees it.)
 */
static void test_event_steals_data_on_failure(void **state)
{
	json_t *data = json_pack("{sis[i]}", "id", 7, "list", 1);
	unsigned int k;
	char *line;
	bool made = false;

	assert_non_null(data);
	for (k = 1; k < 64 && !made; k++) {
		json_incref(data);
		alloc_n = 0;
		fail_at = k;
		json_set_alloc_funcs(failing_malloc, free);
		line = qmp_event("CHECKPOINT", data);
		json_set_alloc_funcs(malloc, free);
		fail_at = 0;
		assert_int_equal(data->refcount, 1);
		made = line != NULL;
		free(line);
	}
	assert_true(made);	/* the last round ran out of failures to inject */
	json_decref(data);
}

/* The line reader, fed through a non-blocking pipe. */
struct pipe_lb {
	int rfd, wfd;
	struct qmp_linebuf *lb;
};

static int lb_setup(void **state)
{
	struct pipe_lb *p = calloc(1, sizeof(*p));
	int fds[2];

	if (p == NULL || pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
		return -1;
	p->rfd = fds[0];
	p->wfd = fds[1];
	if ((p->lb = qmp_linebuf_new()) == NULL)
		return -1;
	*state = p;
	return 0;
}

static int lb_teardown(void **state)
{
	struct pipe_lb *p = *state;

	qmp_linebuf_free(p->lb);
	close(p->rfd);
	if (p->wfd >= 0)
		close(p->wfd);
	free(p);
	return 0;
}

static void put_n(struct pipe_lb *p, const char *s, size_t n)
{
	assert_int_equal(write(p->wfd, s, n), (ssize_t)n);
}

static void put(struct pipe_lb *p, const char *s)
{
	put_n(p, s, strlen(s));
}

static void expect_line(struct pipe_lb *p, const char *want)
{
	const char *line;
	size_t len;
	int r;

	r = qmp_linebuf_next(p->lb, &line, &len);
	if (r != 0)
		fail_msg("want line \"%s\", got %d (%s)", want, r, km_strerror(r));
	assert_int_equal(len, strlen(want));
	assert_int_equal(strlen(line), len);	/* NUL-terminated */
	assert_string_equal(line, want);
}

static void expect_next(struct pipe_lb *p, int want)
{
	const char *line;
	size_t len;

	assert_err(qmp_linebuf_next(p->lb, &line, &len), want);
	assert_null(line);
}

static void test_lines_across_fills(void **state)
{
	struct pipe_lb *p = *state;

	assert_err(qmp_linebuf_fill(p->lb, p->rfd), -EAGAIN);
	expect_next(p, KM_ERR_TRUNCATED);

	put(p, "{\"exe");
	assert_ok(qmp_linebuf_fill(p->lb, p->rfd));
	expect_next(p, KM_ERR_TRUNCATED);
	put(p, "cute\":\"a\"}\n\n{\"execute\":\"b\"}\n{\"ex");
	assert_ok(qmp_linebuf_fill(p->lb, p->rfd));
	expect_line(p, "{\"execute\":\"a\"}");
	expect_line(p, "");
	expect_line(p, "{\"execute\":\"b\"}");
	expect_next(p, KM_ERR_TRUNCATED);
	expect_next(p, KM_ERR_TRUNCATED);
	put(p, "ecute\":");
	assert_ok(qmp_linebuf_fill(p->lb, p->rfd));
	expect_next(p, KM_ERR_TRUNCATED);
	put(p, "\"c\"}\n");
	assert_ok(qmp_linebuf_fill(p->lb, p->rfd));
	expect_line(p, "{\"execute\":\"c\"}");
	expect_next(p, KM_ERR_TRUNCATED);
	assert_err(qmp_linebuf_fill(p->lb, p->rfd), -EAGAIN);
}

/*
 * Writes len bytes of c, then "\n" if nl, in pipe-sized pieces, and takes
 * lines as they arrive; returns how many KM_ERR_TOO_LARGE were reported
 * and checks that no line came out.
 */
static int feed_long(struct pipe_lb *p, char c, size_t len, int nl)
{
	static char chunk[4096];
	const char *line;
	size_t n, l;
	int r, too_large = 0;

	memset(chunk, c, sizeof(chunk));
	while (len > 0 || nl) {
		n = len < sizeof(chunk) ? len : sizeof(chunk);
		if (n > 0) {
			put_n(p, chunk, n);
			len -= n;
		} else {
			put(p, "\n");
			nl = 0;
		}
		assert_ok(qmp_linebuf_fill(p->lb, p->rfd));
		while ((r = qmp_linebuf_next(p->lb, &line, &l)) != KM_ERR_TRUNCATED) {
			if (r != KM_ERR_TOO_LARGE)
				fail_msg("got %d (%s) in a long line", r, km_strerror(r));
			too_large++;
		}
	}
	return too_large;
}

static void test_too_long_then_recovery(void **state)
{
	struct pipe_lb *p = *state;
	const char *line;
	size_t len;

	/* Exactly the limit is fine. */
	assert_int_equal(feed_long(p, 'a', QMP_MAX_LINE, 0), 0);
	put(p, "\n");
	assert_ok(qmp_linebuf_fill(p->lb, p->rfd));
	assert_ok(qmp_linebuf_next(p->lb, &line, &len));
	assert_int_equal(len, QMP_MAX_LINE);
	assert_int_equal(strlen(line), QMP_MAX_LINE);
	expect_next(p, KM_ERR_TRUNCATED);

	/* One byte more is reported once, then the line is skipped. */
	assert_int_equal(feed_long(p, 'b', QMP_MAX_LINE + 1, 1), 1);
	put(p, "{\"execute\":\"after\"}\n");
	assert_ok(qmp_linebuf_fill(p->lb, p->rfd));
	expect_line(p, "{\"execute\":\"after\"}");
	expect_next(p, KM_ERR_TRUNCATED);

	/* Three times the limit: still one report, and the next line works. */
	assert_int_equal(feed_long(p, 'c', 3 * QMP_MAX_LINE + 5, 1), 1);
	put(p, "x\n");
	assert_ok(qmp_linebuf_fill(p->lb, p->rfd));
	expect_line(p, "x");
	expect_next(p, KM_ERR_TRUNCATED);
}

/* A caller that fills without taking lines still sees the overflow. */
static void test_overflow_without_next(void **state)
{
	static char chunk[4096];
	struct pipe_lb *p = *state;
	size_t sent = 0;
	int r;

	memset(chunk, 'z', sizeof(chunk));
	while (sent < QMP_MAX_LINE + 100) {
		put_n(p, chunk, sizeof(chunk));
		sent += sizeof(chunk);
		while ((r = qmp_linebuf_fill(p->lb, p->rfd)) == 0)
			;
		assert_err(r, -EAGAIN);
	}
	put(p, "\nok\n");
	assert_ok(qmp_linebuf_fill(p->lb, p->rfd));
	expect_next(p, KM_ERR_TOO_LARGE);
	expect_line(p, "ok");
	expect_next(p, KM_ERR_TRUNCATED);
}

/* Complete lines not taken and no room: refused, nothing lost. */
static void test_full_of_lines_is_no_space(void **state)
{
	static char lines[4096];
	struct pipe_lb *p = *state;
	size_t i, total = 0;
	int r, n = 0;

	for (i = 0; i < sizeof(lines); i += 2)
		memcpy(lines + i, "q\n", 2);
	while (total <= QMP_MAX_LINE) {
		put_n(p, lines, sizeof(lines));
		total += sizeof(lines);
		while ((r = qmp_linebuf_fill(p->lb, p->rfd)) == 0)
			;
		if (r == KM_ERR_NO_SPACE)
			break;
		assert_err(r, -EAGAIN);
	}
	assert_err(qmp_linebuf_fill(p->lb, p->rfd), KM_ERR_NO_SPACE);
	/* Drain, and every line sent arrives. */
	for (;;) {
		while (qmp_linebuf_next(p->lb, NULL, NULL) == 0)
			n++;
		r = qmp_linebuf_fill(p->lb, p->rfd);
		if (r == -EAGAIN)
			break;
		assert_ok(r);
	}
	assert_int_equal((size_t)n, total / 2);
}

static void test_eof(void **state)
{
	struct pipe_lb *p = *state;

	put(p, "{\"execute\":\"a\"}\n{\"execute\":\"b\"}");
	close(p->wfd);
	p->wfd = -1;
	assert_ok(qmp_linebuf_fill(p->lb, p->rfd));
	expect_line(p, "{\"execute\":\"a\"}");
	expect_next(p, KM_ERR_TRUNCATED);	/* more may come yet */
	assert_err(qmp_linebuf_fill(p->lb, p->rfd), KM_ERR_END);
	expect_line(p, "{\"execute\":\"b\"}");	/* the peer's last word */
	expect_next(p, KM_ERR_TRUNCATED);
	assert_err(qmp_linebuf_fill(p->lb, p->rfd), KM_ERR_END);
	expect_next(p, KM_ERR_TRUNCATED);
}

static void test_bad_fd(void **state)
{
	struct qmp_linebuf *lb = qmp_linebuf_new();

	assert_err(qmp_linebuf_fill(lb, -1), -EBADF);
	assert_err(qmp_linebuf_fill(NULL, 0), KM_ERR_INVALID);
	assert_err(qmp_linebuf_next(NULL, NULL, NULL), KM_ERR_INVALID);
	qmp_linebuf_free(lb);
	qmp_linebuf_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_requests),
		cmocka_unit_test(test_malformed_requests),
		cmocka_unit_test(test_error_buffer_bounds),
		cmocka_unit_test(test_reply_return),
		cmocka_unit_test(test_reply_error),
		cmocka_unit_test(test_string),
		cmocka_unit_test(test_event),
		cmocka_unit_test(test_event_steals_data_on_failure),
		cmocka_unit_test_setup_teardown(test_lines_across_fills, lb_setup, lb_teardown),
		cmocka_unit_test_setup_teardown(test_too_long_then_recovery, lb_setup, lb_teardown),
		cmocka_unit_test_setup_teardown(test_overflow_without_next, lb_setup, lb_teardown),
		cmocka_unit_test_setup_teardown(test_full_of_lines_is_no_space, lb_setup, lb_teardown),
		cmocka_unit_test_setup_teardown(test_eof, lb_setup, lb_teardown),
		cmocka_unit_test(test_bad_fd),
	};

	/* Keep TAP lines (stdout) in order with failure messages (stderr). */
	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
