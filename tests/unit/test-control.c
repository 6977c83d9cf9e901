/*
 * Unit tests of the control socket's events (kvm/control.c) without
 * /dev/kvm: a server for a VM that is a bare struct kvm, clients that
 * enable events or not, control__event from the test's threads. What is
 * tested: only a client that enabled events gets them, after its reply; an
 * unknown capability enables nothing; a client that does not read is
 * dropped and the emitter never waits for it; control__stop while a
 * thread emits (a smoke test: the window a missing lock would leave is too
 * narrow to hit reliably; the sanitizer build makes a hit loud).
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "unit.h"
#include "qmp.h"
#include "kvm/control.h"
#include "kvm/kvm.h"

struct srv {
	char dir[64], path[128];
	struct kvm *kvm;
	struct control *c;
};

struct client {
	int fd;
	struct qmp_linebuf *lb;
};

static int srv_setup(void **state)
{
	struct srv *s = calloc(1, sizeof(*s));

	if (!s)
		return -1;
	snprintf(s->dir, sizeof(s->dir), "/tmp/test-control.XXXXXX");
	if (!mkdtemp(s->dir))
		return -1;
	snprintf(s->path, sizeof(s->path), "%s/t.sock", s->dir);
	if (!(s->kvm = calloc(1, sizeof(*s->kvm))))
		return -1;
	snprintf(s->kvm->name, sizeof(s->kvm->name), "t");
	if (control__start(s->kvm, s->path, &s->c) != 0)
		return -1;
	*state = s;
	return 0;
}

static int srv_teardown(void **state)
{
	struct srv *s = *state;

	control__stop(s->c);
	rmdir(s->dir);
	free(s->kvm);
	free(s);
	return 0;
}

/* The next line (parsed), waiting at most 10 s; NULL at the end or on timeout. */
static json_t *next(struct client *cl)
{
	const char *line;
	size_t len;
	int r;

	for (;;) {
		struct pollfd p = { .fd = cl->fd, .events = POLLIN };

		r = qmp_linebuf_next(cl->lb, &line, &len);
		if (r == 0)
			return json_loadb(line, len, 0, NULL);
		if (r != KM_ERR_TRUNCATED || poll(&p, 1, 10000) != 1 ||
		    qmp_linebuf_fill(cl->lb, cl->fd) != 0)
			return NULL;
	}
}

/* Whether a line (or part of one) has arrived that was not read yet. */
static bool pending(struct client *cl)
{
	struct pollfd p = { .fd = cl->fd, .events = POLLIN };
	const char *line;
	size_t len;
	char c;

	if (qmp_linebuf_next(cl->lb, &line, &len) == 0)
		return true;
	return poll(&p, 1, 0) == 1 && recv(cl->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
}

static void put(struct client *cl, const char *req)
{
	size_t n = strlen(req);

	assert_int_equal(send(cl->fd, req, n, MSG_NOSIGNAL), (ssize_t)n);
	assert_int_equal(send(cl->fd, "\n", 1, MSG_NOSIGNAL), 1);
}

/* Connects and takes the greeting (returned in *greeting if asked for). */
static void connect_to(struct srv *s, struct client *cl, json_t **greeting)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	json_t *g;

	memcpy(sun.sun_path, s->path, strlen(s->path) + 1);
	cl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(cl->fd >= 0);
	assert_int_equal(connect(cl->fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_non_null(cl->lb = qmp_linebuf_new());
	g = next(cl);
	assert_non_null(json_object_get(g, "QMP"));
	if (greeting)
		*greeting = g;
	else
		json_decref(g);
}

static void disconnect(struct client *cl)
{
	close(cl->fd);
	qmp_linebuf_free(cl->lb);
}

/* The next line is the reply {"return": {}, "id": id}. */
static void expect_return(struct client *cl, int id)
{
	json_t *got = next(cl), *want = json_pack("{s{}si}", "return", "id", id);

	if (!json_equal(got, want)) {
		char *s = got ? json_dumps(got, JSON_COMPACT) : NULL;

		fail_msg("wanted the reply {\"return\": {}, \"id\": %d}, got %s", id,
			 s ? s : "nothing");
	}
	json_decref(got);
	json_decref(want);
}

/* The next line is an error reply with id whose desc holds what. */
static void expect_error(struct client *cl, int id, const char *what)
{
	json_t *got = next(cl);
	const char *desc = NULL;
	json_int_t got_id = -1;

	assert_non_null(got);
	assert_int_equal(json_unpack(got, "{s:{s:s}, s:I}", "error", "desc", &desc, "id", &got_id),
			 0);
	assert_int_equal(got_id, id);
	if (!strstr(desc, what))
		fail_msg("error \"%s\" does not say \"%s\"", desc, what);
	json_decref(got);
}

static void enable_events(struct client *cl, int id)
{
	char req[128];

	snprintf(req, sizeof(req), "{\"execute\": \"qmp_capabilities\", \"arguments\": "
		 "{\"enable\": [\"events\"]}, \"id\": %d}", id);
	put(cl, req);
	expect_return(cl, id);
}

static void test_greeting_offers_events(void **state)
{
	struct client a;
	json_t *g, *want = json_pack("[s]", "events");

	connect_to(*state, &a, &g);
	assert_true(json_equal(json_object_get(json_object_get(g, "QMP"), "capabilities"), want));
	json_decref(g);
	json_decref(want);
	disconnect(&a);
}

static void test_events_only_to_clients_that_enable_them(void **state)
{
	struct srv *s = *state;
	struct client plain, ev;
	json_int_t n;
	json_t *e;
	int i;

	connect_to(s, &plain, NULL);
	connect_to(s, &ev, NULL);
	enable_events(&ev, 1);
	for (i = 1; i <= 3; i++)
		control__event(s->kvm, "TEST", json_pack("{si}", "n", i));
	for (i = 1; i <= 3; i++) {
		e = next(&ev);
		assert_non_null(e);
		assert_string_equal(json_string_value(json_object_get(e, "event")), "TEST");
		assert_int_equal(json_unpack(e, "{s:{s:I}}", "data", "n", &n), 0);
		assert_int_equal(n, i);	/* in the order emitted */
		assert_non_null(json_object_get(e, "timestamp"));
		json_decref(e);
	}
	/* The events went out before this request: one would come before the reply. */
	put(&plain, "{\"execute\": \"qmp_capabilities\", \"id\": 7}");
	expect_return(&plain, 7);
	assert_false(pending(&plain));
	assert_false(pending(&ev));
	disconnect(&plain);
	disconnect(&ev);
}

static void test_bad_capabilities_enable_nothing(void **state)
{
	struct srv *s = *state;
	struct client a;

	connect_to(s, &a, NULL);
	put(&a, "{\"execute\": \"qmp_capabilities\", \"arguments\": "
	    "{\"enable\": [\"events\", \"oob\"]}, \"id\": 1}");
	expect_error(&a, 1, "\"oob\" is not available");
	put(&a, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": \"events\"}, \"id\": 2}");
	expect_error(&a, 2, "arguments");
	put(&a, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [1]}, \"id\": 3}");
	expect_error(&a, 3, "not a string");
	put(&a, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"events\": true}, \"id\": 4}");
	expect_error(&a, 4, "arguments");
	control__event(s->kvm, "TEST", NULL);
	put(&a, "{\"execute\": \"qmp_capabilities\", \"id\": 5}");
	expect_return(&a, 5);
	assert_false(pending(&a));
	/* An empty list is accepted, and enables nothing either. */
	put(&a, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": []}, \"id\": 6}");
	expect_return(&a, 6);
	control__event(s->kvm, "TEST", NULL);
	put(&a, "{\"execute\": \"qmp_capabilities\", \"id\": 8}");
	expect_return(&a, 8);
	assert_false(pending(&a));
	disconnect(&a);
}

/*
 * A client that enabled events and does not read: its socket buffer fills,
 * and the next event that does not fit drops it, at once, without the
 * emitter waiting. What it got before is whole lines (and perhaps the head
 * of the one that did not fit), then the end; the server serves on.
 */
static void test_slow_client_is_dropped(void **state)
{
	struct srv *s = *state;
	struct client slow, later;
	struct pollfd p;
	char pad[1024];
	const char *line;
	size_t len;
	int i, lines = 0, r;

	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = 0;
	connect_to(s, &slow, NULL);
	enable_events(&slow, 1);
	alarm(60);	/* an emitter that waits for the client would hang here */
	for (i = 0; i < 100000; i++) {
		control__event(s->kvm, "TEST", json_pack("{siss}", "n", i, "pad", pad));
		p = (struct pollfd){ .fd = slow.fd, .events = POLLRDHUP };
		if (poll(&p, 1, 0) == 1 && (p.revents & POLLRDHUP))
			break;
	}
	alarm(0);
	assert_true(i > 10 && i < 100000);	/* the buffer held some; then it was dropped */
	/* Read what it holds: whole event lines in order, then the end. */
	for (;;) {
		while ((r = qmp_linebuf_next(slow.lb, &line, &len)) == 0) {
			json_t *e = json_loadb(line, len, 0, NULL);
			json_int_t n = -1;

			if (!e) {
				/* The head of the line that did not fit: only ever the last. */
				assert_int_equal(qmp_linebuf_next(slow.lb, &line, &len),
						 KM_ERR_TRUNCATED);
				break;
			}
			assert_int_equal(json_unpack(e, "{s:{s:I}}", "data", "n", &n), 0);
			assert_int_equal(n, lines);
			lines++;
			json_decref(e);
		}
		r = qmp_linebuf_fill(slow.lb, slow.fd);
		if (r == KM_ERR_END)
			break;
		assert_ok(r);
	}
	assert_true(lines > 0 && lines <= i);
	disconnect(&slow);
	connect_to(s, &later, NULL);
	enable_events(&later, 2);
	disconnect(&later);
}

static void test_event_without_socket(void **state)
{
	struct kvm *kvm = calloc(1, sizeof(*kvm));
	json_t *data = json_object();

	assert_non_null(kvm);
	json_incref(data);
	control__event(kvm, "TEST", data);	/* no control socket: data freed */
	assert_int_equal(data->refcount, 1);
	json_incref(data);
	control__event(NULL, "TEST", data);
	assert_int_equal(data->refcount, 1);
	json_decref(data);
	free(kvm);
}

struct emitter {
	struct kvm *kvm;
	atomic_uint sent;
	atomic_bool stop;
};

static void *emit_loop(void *arg)
{
	struct emitter *e = arg;

	while (!atomic_load(&e->stop)) {
		control__event(e->kvm, "TEST", json_pack("{si}", "n", 1));
		atomic_fetch_add(&e->sent, 1);
	}
	return NULL;
}

/*
 * control__stop while another thread emits (as the checkpoint thread may
 * while kvm-run shuts down): the emitter never touches the freed server,
 * and finds no socket afterwards.
 */
static void test_emit_while_stopping(void **state)
{
	struct srv *s = *state;
	struct emitter e = { .kvm = s->kvm };
	struct client cl;
	pthread_t t;

	connect_to(s, &cl, NULL);
	enable_events(&cl, 1);
	assert_int_equal(pthread_create(&t, NULL, emit_loop, &e), 0);
	while (atomic_load(&e.sent) < 100)
		sched_yield();
	control__stop(s->c);
	s->c = NULL;
	assert_null(s->kvm->control);
	atomic_store(&e.stop, true);
	pthread_join(t, NULL);
	disconnect(&cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_greeting_offers_events, srv_setup,
						srv_teardown),
		cmocka_unit_test_setup_teardown(test_events_only_to_clients_that_enable_them,
						srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_bad_capabilities_enable_nothing, srv_setup,
						srv_teardown),
		cmocka_unit_test_setup_teardown(test_slow_client_is_dropped, srv_setup,
						srv_teardown),
		cmocka_unit_test(test_event_without_socket),
		cmocka_unit_test_setup_teardown(test_emit_while_stopping, srv_setup, srv_teardown),
	};

	/* Keep TAP lines (stdout) in order with failure messages (stderr). */
	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
