/*
 * kvm-migrated: the per-host daemon that receives migrations
 * (DESIGN.md s.3, docs/kvm-migrated.8).
 *
 * The daemon only accepts connections: each one is handled by a forked
 * child, which does the TLS handshake (so a slow or hostile peer holds up
 * nobody), receives the VM and, once it runs, becomes that VM's process
 * with its control socket in the daemon's run directory. A child that
 * fails exits; the daemon logs one line per connection with the peer and
 * the outcome. Status queries (kvm-migrate settling an unknown outcome)
 * arrive on the same port and are answered by a child too.
 *
 * Exit status: 0 after SIGTERM/SIGINT, 2 bad command line, 3 setup failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "parse.h"
#include "record.h"
#include "rundir.h"
#include "stream.h"
#include "kvm/control.h"
#include "kvm/kvm.h"
#include "migrate/migrate.h"

#define MAX_CHILDREN	64

struct daemon {
	const char *listen;
	const char *tls_dir;
	bool insecure;
	char rundir[4096];
	const char *console_dir;
	int verbose;
	int io_timeout_ms;
	uint64_t min_free;	/* bytes of available memory an arriving VM must leave */
	struct chan_tls *tls;
	int lfd;
	pid_t children[MAX_CHILDREN];
	char child_peer[MAX_CHILDREN][64];
};

static void usage(FILE *f)
{
	fprintf(f,
"Usage: kvm-migrated [OPTION]...\n"
"Receive live migrations of kvm-migrate VMs on this host.\n"
"\n"
"  -l, --listen ADDR    HOST[:PORT] (default 0.0.0.0:%d) or unix:PATH\n"
"      --tls-dir DIR    x509 directory: ca-cert.pem, server-cert.pem, server-key.pem\n"
"                       (default /etc/kvm-migrate/x509)\n"
"      --insecure       plain TCP without TLS (test networks only)\n"
"      --rundir DIR     where arriving VMs put their control sockets\n"
"                       (default $KVM_MIGRATE_RUNDIR, /run/kvm-migrate)\n"
"      --console-dir DIR  guest consoles to DIR/incoming-PID.console (default: stderr)\n"
"      --io-timeout S   a source silent this long is gone (default 30)\n"
"      --min-free SIZE  refuse a VM whose memory in use would leave less than\n"
"                       SIZE of this host's available memory (default 256M)\n"
"  -v, --verbose        debug logging\n"
"  -h, --help           this help\n"
"  -V, --version        version\n"
"\n"
"Exit status: 0 after SIGTERM or SIGINT, 2 usage, 3 setup failed.\n",
		CHAN_DEFAULT_PORT);
}

static int parse_options(int argc, char **argv, struct daemon *d, const char **rundir_opt)
{
	enum { OPT_TLS = 256, OPT_INSECURE, OPT_RUNDIR, OPT_CONSOLE_DIR, OPT_IO_TIMEOUT,
	       OPT_MIN_FREE };
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "tls-dir", required_argument, NULL, OPT_TLS },
		{ "insecure", no_argument, NULL, OPT_INSECURE },
		{ "rundir", required_argument, NULL, OPT_RUNDIR },
		{ "console-dir", required_argument, NULL, OPT_CONSOLE_DIR },
		{ "io-timeout", required_argument, NULL, OPT_IO_TIMEOUT },
		{ "min-free", required_argument, NULL, OPT_MIN_FREE },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	d->listen = "0.0.0.0";
	d->tls_dir = "/etc/kvm-migrate/x509";
	d->io_timeout_ms = MIGRATE_IO_TIMEOUT_MS;
	d->min_free = MIGRATE_MIN_FREE;
	while ((c = getopt_long(argc, argv, "l:vhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'l': d->listen = optarg; break;
		case OPT_TLS: d->tls_dir = optarg; break;
		case OPT_INSECURE: d->insecure = true; break;
		case OPT_RUNDIR: *rundir_opt = optarg; break;
		case OPT_CONSOLE_DIR: d->console_dir = optarg; break;
		case OPT_IO_TIMEOUT: {
			uint64_t v;

			if (parse_u64(optarg, 1, 3600, &v) != 0) {
				fprintf(stderr, "kvm-migrated: --io-timeout '%s': need 1 to 3600 seconds\n",
					optarg);
				return -1;
			}
			d->io_timeout_ms = (int)v * 1000;
			break;
		}
		case OPT_MIN_FREE:
			if (parse_size(optarg, &d->min_free) != 0) {
				fprintf(stderr, "kvm-migrated: --min-free '%s': not a size (e.g. 512M, 2G, 0)\n",
					optarg);
				return -1;
			}
			break;
		case 'v': d->verbose = 1; break;
		case 'h': usage(stdout); exit(0);
		case 'V':
#ifdef KM_FAULT_INJECTION
			printf("kvm-migrated (%s) [test build: KVM_MIGRATE_FAULT obeyed]\n",
			       PACKAGE_STRING);
#else
			printf("kvm-migrated (%s)\n", PACKAGE_STRING);
#endif
			exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kvm-migrated: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

/*
 * REC_QUERY {name}: does that VM run here? Field 2 of the reply: 1 it runs
 * (or is starting and cannot be stopped), 0 it does not and a receiver
 * still holding the name never will (the query decides that), 2 this
 * daemon cannot tell (docs/protocol.md s.6).
 */
static int child_query(struct daemon *d, struct stream *s)
{
	static const char *const said[] = { "not running", "running", "cannot tell whether it runs" };
	const uint8_t *p;
	uint32_t type, len;
	char name[64];
	struct buf *reply;
	enum rundir_presence there;
	int r;

	if ((r = stream_get(s, 4096, &type, &p, &len)) != 0)
		return r;
	if (type != REC_QUERY || migrate__name_field(p, len, 1, name, sizeof(name)) != 0)
		return KM_ERR_CORRUPT;
	there = rundir_query(d->rundir, name);
	if (!(reply = buf_new(256)))
		return -ENOMEM;
	if ((r = rec_put_field(reply, 1, name, (uint32_t)strlen(name))) == 0 &&
	    (r = rec_put_field_u64(reply, 2, (uint64_t)there)) == 0 &&
	    (r = stream_put(s, REC_QUERY_REPLY, buf_ptr(reply), (uint32_t)buf_len(reply))) == 0)
		r = stream_flush(s);
	buf_free(reply);
	log_info("query for VM %s: %s here", name, said[there]);
	return r;
}

/* On go, before the vCPUs start: the VM's control socket goes up. */
static int child_publish(struct kvm *kvm, void *ctx)
{
	struct daemon *d = ctx;
	struct control *control;
	char sock[4096];
	int r;

	if ((r = rundir_socket_path(d->rundir, kvm->name, sock, sizeof(sock))) != 0 ||
	    (r = control__start_ext(kvm, sock, migrate__control_table(kvm), &control)) != 0)
		log_error("VM %s: no control socket (%s): not starting it", kvm->name,
			  km_strerror(r));
	return r;
}

/* The VM received: serve its control socket until it stops. Returns the exit status. */
static int child_become_vm(struct daemon *d, struct kvm *kvm)
{
	struct control *control = kvm->control;	/* started by child_publish */

	/* As for kvm-run: the signals are blocked (the daemon's mask). */
	if (kvm__stop_on_signals(kvm) != 0)
		log_warn("VM %s: no signal thread; stop it with quit", kvm->name);
	kvm__wait_stopped(kvm, 0);
	kvm__join(kvm);
	log_info("VM %s stopped here: %s (%s)", kvm->name, kvm__stop_reason_name(kvm->stop_reason),
		 kvm->stop_detail);
	control__stop(control);
	migrate__shutdown(kvm);
	switch (kvm->stop_reason) {
	case KVM_STOP_DONE:
	case KVM_STOP_QUIT:
	case KVM_STOP_MIGRATED:
		return 0;
	default:
		return 1;
	}
}

static int child_main(struct daemon *d, int fd)
{
	struct migrate_incoming in = { .rundir = d->rundir, .on_publish = child_publish,
				       .ctx = d };
	char err[CHAN_ERR_MAX] = "", console[4096];
	enum stream_purpose purpose;
	struct stream *s = NULL;
	struct chan *c = NULL;
	struct kvm *kvm = NULL;
	uint64_t caps;
	int r, status = 1;

	close(d->lfd);
	/* Fault injection for the tests (docs/protocol.md): a peer that accepts, then is silent. */
	if (migrate__fault("hang-in-handshake")) {
		log_warn("KVM_MIGRATE_FAULT=hang-in-handshake: accepted, never answering");
		for (;;)
			pause();
	}
	if ((r = chan_accept_fd(fd, d->tls, MIGRATE_HANDSHAKE_MS, &c, err, sizeof(err))) != 0) {
		log_error("refused a connection: %s", err[0] ? err : km_strerror(r));
		return 2;
	}
	snprintf(in.peer, sizeof(in.peer), "%s", chan_peer(c));
	chan_set_timeout(c, d->io_timeout_ms);
	if (!(s = stream_new(c)))
		goto out;
	/* A live peer: the caps it offers are negotiated, not refused (docs/protocol.md). */
	if ((r = stream_get_header_offer(s, &purpose, &caps)) != 0) {
		log_error("refused %s: bad stream header: %s", in.peer, km_strerror(r));
		migrate__send_error(s, r, km_strerror(r));
		goto out;
	}
	if (purpose == STREAM_QUERY) {
		status = child_query(d, s) == 0 ? 0 : 1;
		goto out;
	}
	if (purpose != STREAM_MIGRATE) {
		migrate__send_error(s, KM_ERR_UNSUPPORTED, "this daemon receives migrations only");
		goto out;
	}
	/* The name is known only inside migrate__receive: consoles go by pid. */
	if (d->console_dir) {
		snprintf(console, sizeof(console), "%s/incoming-%d.console", d->console_dir,
			 (int)getpid());
		in.console_path = console;
	}
	in.caps = caps & STREAM_CAPS_KNOWN;
	in.min_free = d->min_free;
	/* An earlier receiver of the name ends at its I/O timeout at the latest. */
	in.reserve_wait_ms = (unsigned int)d->io_timeout_ms + 1000;
	/* Fault injection for the tests (docs/protocol.md): a destination without lz4. */
	if (migrate__fault("no-lz4"))
		in.caps &= ~STREAM_CAP_LZ4;
	if ((r = migrate__receive(s, &in, &kvm)) != 0)
		goto out;
	stream_free(s);
	s = NULL;
	chan_close(c);
	c = NULL;
	status = child_become_vm(d, kvm);
out:
	stream_free(s);
	chan_close(c);
	if (kvm)
		control__stop(kvm->control);
	kvm__destroy(kvm);
	return status;
}

static void reap(struct daemon *d)
{
	int st, i;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (i = 0; i < MAX_CHILDREN; i++)
			if (d->children[i] == pid)
				d->children[i] = 0;
		if (WIFEXITED(st))
			log_debug("child %d exited with status %d", (int)pid, WEXITSTATUS(st));
		else if (WIFSIGNALED(st))
			log_warn("child %d killed by signal %d", (int)pid, WTERMSIG(st));
	}
}

static void accept_one(struct daemon *d, sigset_t *blocked)
{
	pid_t pid;
	int fd, i;

	unsigned int uid;

	fd = accept4(d->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	/* A unix listener has no TLS: only this daemon's user and root may use it. */
	if (!strncmp(d->listen, "unix:", 5) && chan_unix_peer_check(fd, &uid) != 0) {
		log_error("refused a connection: uid %u may not use this unix socket (only uid %u "
			  "and root)", uid, (unsigned int)geteuid());
		close(fd);
		return;
	}
	for (i = 0; i < MAX_CHILDREN && d->children[i]; i++)
		;
	if (i == MAX_CHILDREN) {
		log_warn("too many connections in progress: one refused");
		close(fd);
		return;
	}
	pid = fork();
	if (pid < 0) {
		log_error("fork: %s", strerror(errno));
		close(fd);
		return;
	}
	if (pid == 0) {
		/*
		 * The child is a VM process to be: signals as kvm-run has them,
		 * in a session of its own, so that the daemon's terminal or
		 * process group going away (SIGHUP, a kill of the group) does
		 * not take the VMs it received along.
		 */
		sigprocmask(SIG_SETMASK, blocked, NULL);
		(void)setsid();
		_exit(child_main(d, fd));
	}
	d->children[i] = pid;
	close(fd);
}

int main(int argc, char **argv)
{
	struct daemon d = { .lfd = -1 };
	const char *rundir_opt = NULL;
	char err[CHAN_ERR_MAX] = "";
	struct pollfd pfd[2];
	struct signalfd_siginfo si;
	sigset_t set;
	int sfd = -1, r, status = 3;

	if (parse_options(argc, argv, &d, &rundir_opt) < 0)
		return 2;
	log_init("kvm-migrated", d.verbose ? LOG_DEBUG : LOG_INFO);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if ((sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
		log_error("signalfd: %s", strerror(errno));
		goto out;
	}
	if ((r = rundir_resolve(rundir_opt, d.rundir, sizeof(d.rundir))) != 0) {
		log_error("run directory %s: %s", d.rundir, rundir_strerror(r));
		goto out;
	}
	if (strncmp(d.listen, "unix:", 5) != 0 && !d.insecure &&
	    chan_tls_new(d.tls_dir, true, &d.tls, err, sizeof(err)) != 0) {
		log_error("TLS: %s (use --tls-dir, or scripts/make-certs to create one)", err);
		goto out;
	}
	if ((d.lfd = chan_listen(d.listen, err, sizeof(err))) < 0) {
		log_error("listen on %s: %s", d.listen, err);
		goto out;
	}
	log_info("listening on %s (%s), port %d, VMs in %s", d.listen,
		 d.tls ? "TLS 1.3, client certificates required" : "no TLS",
		 chan_local_port(d.lfd), d.rundir);
	for (;;) {
		pfd[0].fd = sfd;
		pfd[0].events = POLLIN;
		pfd[1].fd = d.lfd;
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents & POLLIN) {
			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo == SIGCHLD) {
				reap(&d);
				continue;
			}
			log_info("signal %s: shutting down (VMs already running here keep running)",
				 strsignal((int)si.ssi_signo));
			break;
		}
		if (pfd[1].revents & POLLIN)
			accept_one(&d, &set);
	}
	status = 0;
out:
	if (d.lfd >= 0) {
		close(d.lfd);
		if (!strncmp(d.listen, "unix:", 5))
			unlink(d.listen + 5);
	}
	if (sfd >= 0)
		close(sfd);
	chan_tls_free(d.tls);
	return status;
}
