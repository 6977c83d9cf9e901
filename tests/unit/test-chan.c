/*
 * Unit tests of lib/chan.c: real sockets (unix, 127.0.0.1, ::1) and real
 * certificates, made at start-up by scripts/make-certs into a temporary
 * directory:
 *	a/	 CA "A"; server and client certificates CN=host-a
 *	b/	 signed by A, CN=host-b (the usual client)
 *	rogue/	 trusts A, but its client certificate is from another CA
 *	expired/ signed by A, certificates that expired in 2020
 *	wrong/	 signed by A, subjectAltName without 127.0.0.1
 * Asserts run in the main thread only; helper threads store results.
 * SIGPIPE keeps its default action on purpose: a write that raised it
 * would kill the test.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"
#include "chan.h"

#ifndef KM_SRCDIR
#define KM_SRCDIR ".."
#endif

#define TIMEOUT_MS	10000
#define BIG		(4u << 20)

static char tmpdir[PATH_MAX];

/* Loaded once: the sides the tests combine. */
static struct chan_tls *srv_a, *cli_b, *cli_rogue, *cli_expired, *srv_expired, *srv_wrong;

/* Fails with the reason when a call that should succeed did not. */
#define assert_chan_ok(expr, err) do {					\
	int r_ = (expr);						\
	if (r_ != 0)							\
		fail_msg("%s\n  got %d (%s): %s", #expr, r_,		\
			 km_strerror(r_), (err));			\
} while (0)

#define assert_contains(hay, needle) do {				\
	if (strstr((hay), (needle)) == NULL)				\
		fail_msg("'%s' does not contain '%s'", (hay), (needle)); \
} while (0)

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void path_in(char *out, size_t outlen, const char *name)
{
	if ((size_t)snprintf(out, outlen, "%s/%s", tmpdir, name) >= outlen)
		fail_msg("path too long");
}

/* Runs scripts/make-certs with args (NULL-terminated, DIR last) in tmpdir. */
static int make_certs(const char *const *args)
{
	const char *top = getenv("top_srcdir");
	char script[PATH_MAX];
	const char *argv[16];
	int n = 0, status;
	pid_t pid;

	snprintf(script, sizeof(script), "%s/scripts/make-certs", top ? top : KM_SRCDIR);
	argv[n++] = script;
	while (*args != NULL && n < 15)
		argv[n++] = *args++;
	argv[n] = NULL;
	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		if (chdir(tmpdir) == 0)
			execv(script, (char *const *)argv);
		perror(script);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "# %s failed\n", script);
		return -1;
	}
	return 0;
}

static int load(const char *sub, bool server, struct chan_tls **out)
{
	char dir[PATH_MAX], err[CHAN_ERR_MAX];
	int r;

	path_in(dir, sizeof(dir), sub);
	if ((r = chan_tls_new(dir, server, out, err, sizeof(err))) != 0)
		fprintf(stderr, "# chan_tls_new %s: %s\n", dir, err);
	return r;
}

/* The rogue client trusts A (so it accepts the server) but holds another CA's certificate. */
static int make_rogue(void)
{
	static const char *const links[][2] = {
		{ "a/ca-cert.pem", "rogue/ca-cert.pem" },
		{ "other/client-cert.pem", "rogue/client-cert.pem" },
		{ "other/client-key.pem", "rogue/client-key.pem" },
	};
	char from[PATH_MAX], to[PATH_MAX];
	size_t i;

	path_in(to, sizeof(to), "rogue");
	if (mkdir(to, 0700) < 0)
		return -1;
	for (i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		path_in(from, sizeof(from), links[i][0]);
		path_in(to, sizeof(to), links[i][1]);
		if (symlink(from, to) < 0)
			return -1;
	}
	return 0;
}

static int setup(void **state)
{
	static const char *const mk_a[] = { "--cn", "host-a", "a", NULL };
	static const char *const mk_b[] = { "--ca-from", "a-ca", "--cn", "host-b", "b", NULL };
	static const char *const mk_other[] = { "--cn", "rogue", "other", NULL };
	static const char *const mk_exp[] = { "--ca-from", "a-ca", "--expired", "--cn", "old",
					      "expired", NULL };
	static const char *const mk_wrong[] = { "--ca-from", "a-ca", "--no-default-san", "--san",
						"DNS:elsewhere.example,IP:192.0.2.1", "--cn",
						"wrong", "wrong", NULL };

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/km-test-chan-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	if (make_certs(mk_a) || make_certs(mk_b) || make_certs(mk_other) ||
	    make_certs(mk_exp) || make_certs(mk_wrong) || make_rogue())
		return -1;
	if (load("a", true, &srv_a) || load("b", false, &cli_b) ||
	    load("rogue", false, &cli_rogue) || load("expired", false, &cli_expired) ||
	    load("expired", true, &srv_expired) || load("wrong", true, &srv_wrong))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	chan_tls_free(srv_a);
	chan_tls_free(cli_b);
	chan_tls_free(cli_rogue);
	chan_tls_free(cli_expired);
	chan_tls_free(srv_expired);
	chan_tls_free(srv_wrong);
	/* tmpdir is our mkdtemp name: no quoting needed. */
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* An accept plus chan_accept_fd, in a thread, so the handshake has both sides. */
struct acceptor {
	pthread_t th;
	int lfd;
	struct chan_tls *tls;
	struct chan *c;
	int r;
	char err[CHAN_ERR_MAX];
};

static void *acceptor_main(void *arg)
{
	struct acceptor *a = arg;
	int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		a->r = -errno;
	else
		a->r = chan_accept_fd(fd, a->tls, TIMEOUT_MS, &a->c, a->err, sizeof(a->err));
	return NULL;
}

static void acceptor_start(struct acceptor *a, int lfd, struct chan_tls *tls)
{
	memset(a, 0, sizeof(*a));
	a->lfd = lfd;
	a->tls = tls;
	assert_int_equal(pthread_create(&a->th, NULL, acceptor_main, a), 0);
}

static void acceptor_join(struct acceptor *a)
{
	assert_int_equal(pthread_join(a->th, NULL), 0);
}

/* A listening socket on 127.0.0.1 with a free port, and its address for connects. */
static int listen_loopback(char *addr, size_t addrlen)
{
	char err[CHAN_ERR_MAX];
	int lfd = chan_listen("127.0.0.1:0", err, sizeof(err));

	if (lfd < 0)
		fail_msg("chan_listen: %s", err);
	assert_true(chan_local_port(lfd) > 0);
	snprintf(addr, addrlen, "127.0.0.1:%d", chan_local_port(lfd));
	return lfd;
}

/* A connected pair: over unix without TLS, or over TCP with server a and client b. */
static void pair_open(bool tls, struct chan **srv, struct chan **cli)
{
	char addr[PATH_MAX + 8], path[PATH_MAX], err[CHAN_ERR_MAX];
	struct acceptor a;
	int lfd;

	if (tls) {
		lfd = listen_loopback(addr, sizeof(addr));
	} else {
		path_in(path, sizeof(path), "pair.sock");
		snprintf(addr, sizeof(addr), "unix:%s", path);
		if ((lfd = chan_listen(addr, err, sizeof(err))) < 0)
			fail_msg("chan_listen: %s", err);
	}
	acceptor_start(&a, lfd, tls ? srv_a : NULL);
	assert_chan_ok(chan_connect(addr, tls ? cli_b : NULL, TIMEOUT_MS, cli, err, sizeof(err)),
		       err);
	acceptor_join(&a);
	assert_chan_ok(a.r, a.err);
	*srv = a.c;
	close(lfd);
}

static void fill(uint8_t *p, size_t len, uint32_t seed)
{
	uint32_t x = seed | 1;
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

/* Reads BIG bytes made with seed_in and checks them, then writes BIG made with seed_out. */
struct echo {
	pthread_t th;
	struct chan *c;
	int r;
	bool same;
};

static void *echo_main(void *arg)
{
	struct echo *e = arg;
	uint8_t *got = malloc(BIG), *want = malloc(BIG);

	if (got == NULL || want == NULL) {
		e->r = -ENOMEM;
		goto out;
	}
	if ((e->r = chan_read_full(e->c, got, BIG)) != 0)
		goto out;
	fill(want, BIG, 1);
	e->same = memcmp(got, want, BIG) == 0;
	fill(want, BIG, 2);
	e->r = chan_write(e->c, want, BIG);
out:
	free(got);
	free(want);
	return NULL;
}

static void round_trip(struct chan *srv, struct chan *cli)
{
	uint8_t *out = malloc(BIG), *in = malloc(BIG);
	struct echo e = { .c = srv };

	assert_non_null(out);
	assert_non_null(in);
	assert_int_equal(pthread_create(&e.th, NULL, echo_main, &e), 0);
	fill(out, BIG, 1);
	assert_ok(chan_write(cli, out, BIG));
	assert_ok(chan_read_full(cli, in, BIG));
	assert_int_equal(pthread_join(e.th, NULL), 0);
	assert_ok(e.r);
	assert_true(e.same);
	fill(out, BIG, 2);
	assert_memory_equal(in, out, BIG);
	free(out);
	free(in);
}

static void test_unix_round_trip(void **state)
{
	char path[PATH_MAX], addr[PATH_MAX + 8], err[CHAN_ERR_MAX];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct chan *srv, *cli;
	int fd, lfd;

	/* A stale socket file, as a crashed listener leaves it, is replaced. */
	path_in(path, sizeof(path), "pair.sock");
	assert_true(strlen(path) < sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path) + 1);
	assert_true((fd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	pair_open(false, &srv, &cli);
	assert_false(chan_is_tls(cli));
	assert_string_equal(chan_peer(srv), "unix");
	assert_int_equal(chan_local_port(chan_fd(cli)), 0);
	round_trip(srv, cli);

	/* A live listener's socket is not taken over. */
	snprintf(addr, sizeof(addr), "unix:%s", path);
	assert_true((lfd = chan_listen(addr, err, sizeof(err))) >= 0);
	assert_err(chan_listen(addr, err, sizeof(err)), -EADDRINUSE);
	assert_contains(err, path);
	close(lfd);
	chan_close(srv);
	chan_close(cli);
}

static void test_tls_round_trip(void **state)
{
	struct chan *srv, *cli;

	pair_open(true, &srv, &cli);
	assert_true(chan_is_tls(srv));
	assert_true(chan_is_tls(cli));
	/* Each side names the other's certificate and address. */
	assert_contains(chan_peer(srv), "CN=host-b (127.0.0.1:");
	assert_contains(chan_peer(cli), "CN=host-a (127.0.0.1:");
	round_trip(srv, cli);
	chan_close(cli);
	chan_close(srv);
}

static void test_tls_ipv6(void **state)
{
	char addr[64], err[CHAN_ERR_MAX];
	struct acceptor a;
	struct chan *cli;
	uint8_t b = 0;
	int lfd;

	if ((lfd = chan_listen("[::1]:0", err, sizeof(err))) < 0) {
		print_message("# no IPv6 loopback here: %s\n", err);
		skip();
	}
	snprintf(addr, sizeof(addr), "[::1]:%d", chan_local_port(lfd));
	acceptor_start(&a, lfd, srv_a);
	assert_chan_ok(chan_connect(addr, cli_b, TIMEOUT_MS, &cli, err, sizeof(err)), err);
	acceptor_join(&a);
	assert_chan_ok(a.r, a.err);
	assert_contains(chan_peer(a.c), "CN=host-b ([::1]:");
	assert_ok(chan_write(a.c, "x", 1));
	assert_ok(chan_read_full(cli, &b, 1));
	assert_int_equal(b, 'x');
	chan_close(cli);
	chan_close(a.c);
	close(lfd);
}

/* A client the server must refuse: its reason; the client's own view is checked by the caller. */
static void refused_client(struct chan_tls *tls, int lfd, const char *addr,
			   struct chan_tls *cli_tls, int *cli_r, char *reason)
{
	char err[CHAN_ERR_MAX] = "";
	struct acceptor a;
	struct chan *cli = NULL;
	uint8_t b;

	acceptor_start(&a, lfd, tls);
	*cli_r = chan_connect(addr, cli_tls, TIMEOUT_MS, &cli, err, sizeof(err));
	/* TLS 1.3: the client's handshake ends before the server has judged it. */
	if (*cli_r == 0)
		*cli_r = (int)chan_read(cli, &b, 1);
	acceptor_join(&a);
	chan_close(cli);
	assert_err(a.r, KM_ERR_AUTH);
	assert_null(a.c);
	snprintf(reason, CHAN_ERR_MAX, "%s", a.err);
	print_message("# server: %s\n", a.err);
}

static void test_unknown_ca_refused(void **state)
{
	char addr[64], reason[CHAN_ERR_MAX], err[CHAN_ERR_MAX];
	struct acceptor a;
	struct chan *cli;
	int lfd = listen_loopback(addr, sizeof(addr)), r;

	refused_client(srv_a, lfd, addr, cli_rogue, &r, reason);
	assert_string_equal(reason, "client certificate verify failed: unable to get local "
			    "issuer certificate (not issued by the CA in our ca-cert.pem)");
	/* The alert tells the client why, at its first read. */
	assert_err(r, KM_ERR_AUTH);

	/* The same listening socket still serves a good client. */
	acceptor_start(&a, lfd, srv_a);
	assert_chan_ok(chan_connect(addr, cli_b, TIMEOUT_MS, &cli, err, sizeof(err)), err);
	acceptor_join(&a);
	assert_chan_ok(a.r, a.err);
	assert_ok(chan_write(cli, "ok", 2));
	assert_ok(chan_read_full(a.c, reason, 2));
	chan_close(cli);
	chan_close(a.c);
	close(lfd);
}

static void test_expired_client_refused(void **state)
{
	char addr[64], reason[CHAN_ERR_MAX];
	int lfd = listen_loopback(addr, sizeof(addr)), r;

	refused_client(srv_a, lfd, addr, cli_expired, &r, reason);
	assert_string_equal(reason, "client certificate verify failed: certificate has expired");
	assert_err(r, KM_ERR_AUTH);
	close(lfd);
}

static void test_plain_client_refused(void **state)
{
	char addr[64], err[CHAN_ERR_MAX];
	struct acceptor a;
	struct chan *cli;
	int lfd = listen_loopback(addr, sizeof(addr));

	acceptor_start(&a, lfd, srv_a);
	assert_chan_ok(chan_connect(addr, NULL, TIMEOUT_MS, &cli, err, sizeof(err)), err);
	assert_false(chan_is_tls(cli));
	assert_string_equal(chan_peer(cli), addr);
	assert_ok(chan_write(cli, "hello, this is not TLS\r\n", 24));
	acceptor_join(&a);
	assert_err(a.r, KM_ERR_AUTH);
	assert_string_equal(a.err, "not a TLS client (wrong version number)");
	chan_close(cli);
	close(lfd);
}

/* A server the client must refuse: the client's reason. */
static void refused_server(struct chan_tls *tls, char *reason)
{
	char addr[64];
	struct acceptor a;
	struct chan *cli = NULL;
	int lfd = listen_loopback(addr, sizeof(addr));

	acceptor_start(&a, lfd, tls);
	assert_err(chan_connect(addr, cli_b, TIMEOUT_MS, &cli, reason, CHAN_ERR_MAX),
		   KM_ERR_AUTH);
	assert_null(cli);
	acceptor_join(&a);
	/* The server hears the client's alert. */
	assert_err(a.r, KM_ERR_AUTH);
	print_message("# client: %s\n# server: %s\n", reason, a.err);
	close(lfd);
}

static void test_expired_server_refused(void **state)
{
	char reason[CHAN_ERR_MAX];

	refused_server(srv_expired, reason);
	assert_string_equal(reason, "server certificate verify failed: certificate has expired");
}

static void test_server_name_mismatch_refused(void **state)
{
	char reason[CHAN_ERR_MAX];

	refused_server(srv_wrong, reason);
	assert_string_equal(reason, "server certificate verify failed: IP address mismatch "
			    "(127.0.0.1 is not in its subjectAltName)");
}

struct reader {
	pthread_t th;
	struct chan *c;
	pthread_barrier_t bar;
	pid_t tid;
	int64_t r, t_end;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	uint8_t buf[64];

	rd->tid = (pid_t)syscall(SYS_gettid);
	pthread_barrier_wait(&rd->bar);
	rd->r = chan_read(rd->c, buf, sizeof(buf));
	rd->t_end = now_ms();
	return NULL;
}

/* True once the thread sleeps in the kernel (in chan_read's poll: it has nothing else to wait on). */
static bool thread_sleeping(pid_t tid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	if ((f = fopen(path, "r")) == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return (p = strrchr(buf, ')')) != NULL && p[1] == ' ' && p[2] == 'S';
}

static void abort_blocked_read(bool tls)
{
	struct timespec tick = { 0, 1000000 };
	struct chan *srv, *cli;
	struct reader rd;
	int64_t t0;
	int i;
	uint8_t b;

	pair_open(tls, &srv, &cli);
	memset(&rd, 0, sizeof(rd));
	rd.c = cli;
	assert_int_equal(pthread_barrier_init(&rd.bar, NULL, 2), 0);
	assert_int_equal(pthread_create(&rd.th, NULL, reader_main, &rd), 0);
	pthread_barrier_wait(&rd.bar);
	/* Polls a condition (the reader is blocked), for at most 10 s. */
	for (i = 0; i < 10000 && !thread_sleeping(rd.tid); i++)
		nanosleep(&tick, NULL);
	assert_true(thread_sleeping(rd.tid));
	t0 = now_ms();
	chan_abort(cli);
	assert_int_equal(pthread_join(rd.th, NULL), 0);
	assert_err((int)rd.r, KM_ERR_CANCELED);
	assert_true(rd.t_end - t0 < 1000);
	/* Later calls fail at once as well. */
	assert_err((int)chan_read(cli, &b, 1), KM_ERR_CANCELED);
	assert_err(chan_write(cli, "x", 1), KM_ERR_CANCELED);
	pthread_barrier_destroy(&rd.bar);
	chan_close(cli);
	chan_close(srv);
}

static void test_abort_unblocks_read(void **state)
{
	abort_blocked_read(false);
	abort_blocked_read(true);
}

static void close_mid_read(bool tls)
{
	struct chan *srv, *cli;
	uint8_t buf[100];

	pair_open(tls, &srv, &cli);
	assert_ok(chan_write(srv, "0123456789", 10));
	chan_close(srv);
	assert_err(chan_read_full(cli, buf, sizeof(buf)), KM_ERR_TRUNCATED);
	assert_memory_equal(buf, "0123456789", 10);
	/* At a boundary the end is just the end. */
	assert_err(chan_read_full(cli, buf, sizeof(buf)), KM_ERR_END);
	assert_err((int)chan_read(cli, buf, 1), KM_ERR_END);
	chan_close(cli);
}

static void test_close_mid_read(void **state)
{
	close_mid_read(false);
	close_mid_read(true);
}

/* With SIGPIPE at its default action, a write that raised it would kill us. */
static void write_to_closed(bool tls)
{
	static uint8_t junk[1 << 16];
	struct chan *srv, *cli;
	int i, r = 0;

	pair_open(tls, &srv, &cli);
	chan_close(srv);
	for (i = 0; i < 64 && r == 0; i++)
		r = chan_write(cli, junk, sizeof(junk));
	assert_err(r, KM_ERR_PEER);
	chan_close(cli);
}

static void test_write_to_closed_peer(void **state)
{
	write_to_closed(false);
	write_to_closed(true);
}

static void test_connect_refused(void **state)
{
	char addr[64], err[CHAN_ERR_MAX], want[CHAN_ERR_MAX];
	struct chan *cli = NULL;
	int lfd = listen_loopback(addr, sizeof(addr));

	/* The port was just free and nobody listens on it now. */
	close(lfd);
	assert_err(chan_connect(addr, cli_b, TIMEOUT_MS, &cli, err, sizeof(err)), -ECONNREFUSED);
	assert_null(cli);
	snprintf(want, sizeof(want), "connect to %s: Connection refused", addr);
	assert_string_equal(err, want);
}

static void read_timeout(bool tls)
{
	struct chan *srv, *cli;
	int64_t t0, dt;
	uint8_t b;

	pair_open(tls, &srv, &cli);
	assert_ok(chan_set_timeout(cli, 100));
	t0 = now_ms();
	assert_err((int)chan_read(cli, &b, 1), KM_ERR_TIMEOUT);
	dt = now_ms() - t0;
	assert_true(dt >= 100 && dt < 2000);
	/* A timeout does not break the channel. */
	assert_ok(chan_write(srv, "y", 1));
	assert_int_equal(chan_read(cli, &b, 1), 1);
	assert_int_equal(b, 'y');
	chan_close(cli);
	chan_close(srv);
}

static void test_read_timeout(void **state)
{
	read_timeout(false);
	read_timeout(true);
}

/* A listener that never accepts: the kernel completes TCP, nobody answers TLS. */
static void test_handshake_timeout(void **state)
{
	char addr[64], err[CHAN_ERR_MAX];
	struct chan *cli = NULL;
	int lfd = listen_loopback(addr, sizeof(addr));
	int64_t t0 = now_ms();

	assert_err(chan_connect(addr, cli_b, 200, &cli, err, sizeof(err)), KM_ERR_TIMEOUT);
	assert_true(now_ms() - t0 < 2000);
	assert_string_equal(err, "TLS handshake with the server: timed out");
	close(lfd);
}

static void *cancel_thread(void *arg)
{
	(void)eventfd_write(*(int *)arg, 1);
	return NULL;
}

/*
 * The same silent listener, with a 10 s bound and another thread's cancel:
 * whether the cancel lands before or during the handshake's wait, the
 * connect ends at once with KM_ERR_CANCELED.
 */
static void test_handshake_cancel(void **state)
{
	char addr[64], err[CHAN_ERR_MAX];
	struct chan *cli = NULL;
	int lfd = listen_loopback(addr, sizeof(addr)), efd = eventfd(0, EFD_CLOEXEC);
	int64_t t0 = now_ms();
	pthread_t th;

	assert_true(efd >= 0);
	assert_int_equal(pthread_create(&th, NULL, cancel_thread, &efd), 0);
	assert_err(chan_connect_cancellable(addr, cli_b, 10000, efd, &cli, err, sizeof(err)),
		   KM_ERR_CANCELED);
	assert_true(now_ms() - t0 < 2000);
	assert_null(cli);
	assert_int_equal(pthread_join(th, NULL), 0);
	close(efd);
	close(lfd);
}

static void test_bad_arguments(void **state)
{
	char err[CHAN_ERR_MAX], dir[PATH_MAX];
	struct chan_tls *tls = (struct chan_tls *)1;
	struct chan *c = (struct chan *)1;
	int sv[2];

	assert_err(chan_listen("127.0.0.1:65536", err, sizeof(err)), KM_ERR_INVALID);
	assert_string_equal(err, "bad address '127.0.0.1:65536'");
	assert_err(chan_listen("unix:", err, sizeof(err)), KM_ERR_INVALID);
	assert_err(chan_listen("[::1:80", err, sizeof(err)), KM_ERR_INVALID);
	assert_err(chan_connect(":4917", NULL, 100, &c, err, sizeof(err)), KM_ERR_INVALID);
	assert_null(c);
	path_in(dir, sizeof(dir), "nowhere");
	assert_err(chan_tls_new(dir, true, &tls, err, sizeof(err)), KM_ERR_INVALID);
	assert_null(tls);
	assert_contains(err, "nowhere/ca-cert.pem: No such file or directory");
	assert_err(chan_connect("unix:/nonexistent", NULL, 100, &c, err, sizeof(err)),
		   -ENOENT);
	assert_string_equal(err, "connect to unix:/nonexistent: No such file or directory");
	/* Client material cannot serve (the channel owns the fd even then). */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_err(chan_accept_fd(sv[0], cli_b, 100, &c, err, sizeof(err)), KM_ERR_INVALID);
	assert_string_equal(err, "TLS material loaded for the wrong side");
	assert_err(fcntl(sv[0], F_GETFD), -1);
	close(sv[1]);
	chan_tls_free(NULL);
	chan_close(NULL);
	assert_string_equal(chan_peer(NULL), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unix_round_trip),
		cmocka_unit_test(test_tls_round_trip),
		cmocka_unit_test(test_tls_ipv6),
		cmocka_unit_test(test_unknown_ca_refused),
		cmocka_unit_test(test_expired_client_refused),
		cmocka_unit_test(test_plain_client_refused),
		cmocka_unit_test(test_expired_server_refused),
		cmocka_unit_test(test_server_name_mismatch_refused),
		cmocka_unit_test(test_abort_unblocks_read),
		cmocka_unit_test(test_close_mid_read),
		cmocka_unit_test(test_write_to_closed_peer),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_read_timeout),
		cmocka_unit_test(test_handshake_timeout),
		cmocka_unit_test(test_handshake_cancel),
		cmocka_unit_test(test_bad_arguments),
	};

	/* Keep TAP lines (stdout) in order with failure messages (stderr). */
	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, setup, teardown);
}
