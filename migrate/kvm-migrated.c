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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/eventfd.h>
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
#include "kvm/uart.h"
#include "migrate/admit.h"
#include "migrate/keyagent.h"
#include "migrate/migrate.h"
#include "snapshot/checkpoint.h"

#define RECEIVE_TIME_DEFAULT_S	3600
#define RECEIVE_ROUNDS_DEFAULT	100000	/* kvm-migrate --max-rounds at most */

struct daemon {
	const char *listen;
	const char *tls_dir;
	bool insecure;
	bool insecure_network;	/* --insecure on an address other hosts can reach */
	char allow[1024];	/* --allow-peer: certificate CNs, comma-separated; "" any */
	char rundir[4096];
	const char *console_dir;
	int verbose;
	int io_timeout_ms;
	uint64_t min_free;	/* bytes of available memory an arriving VM must leave */
	struct admit_limits lim;
	unsigned int receive_s;	/* a receive ends after this long, whatever the peer does */
	uint64_t max_rounds;	/* ... or after this many rounds */
	struct chan_tls *tls;
	int lfd;
	struct admit *admit;	/* the daemon's children (admit.h) */
	int report_fd;		/* in a child: its end of the socket pair to the daemon */
	int agent_fd;		/* the key agent (keyagent.h); -1 without TLS */
	pid_t agent_pid;
	uint64_t refused, refused_logged_ns;	/* connections refused by the limits */
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
"      --insecure       plain TCP without TLS: no authentication at all (test\n"
"                       networks only); only on a loopback --listen address\n"
"      --insecure-network  ... and on any address, when you mean it\n"
"      --allow-peer NAME[,NAME...]  accept only clients whose certificate CN is\n"
"                       one of these (on top of the CA; repeatable)\n"
"      --rundir DIR     where arriving VMs put their control sockets\n"
"                       (default $KVM_MIGRATE_RUNDIR, /run/kvm-migrate)\n"
"      --console-dir DIR  guest consoles to DIR/incoming-PID.console (default: stderr)\n"
"      --io-timeout S   a source silent this long is gone (default 30)\n"
"      --min-free SIZE  refuse a VM whose memory in use would leave less than\n"
"                       SIZE of this host's available memory (default 256M)\n"
"      --max-guest-mem SIZE  guest memory of all VMs being received and received\n"
"                       and running, summed by their whole size (default: this\n"
"                       host's RAM)\n"
"      --max-handshakes N      unauthenticated connections at once (default %d)\n"
"      --max-handshakes-per-peer N  ... from one address (default %d)\n"
"      --max-receives N        migrations received at once (default %d)\n"
"      --max-receive-time S    a migration still arriving after S s is refused\n"
"                       (default %d)\n"
"      --max-rounds N   ... or after N pre-copy rounds (default %d)\n"
"  -v, --verbose        debug logging\n"
"  -h, --help           this help\n"
"  -V, --version        version\n"
"\n"
"Exit status: 0 after SIGTERM or SIGINT, 2 usage, 3 setup failed.\n",
		CHAN_DEFAULT_PORT, ADMIT_DEFAULT_HANDSHAKES, ADMIT_DEFAULT_PER_PEER,
		ADMIT_DEFAULT_RECEIVES, RECEIVE_TIME_DEFAULT_S, RECEIVE_ROUNDS_DEFAULT);
}

/* Whether a --listen HOST[:PORT] names a loopback address only. */
static bool listen_is_loopback(const char *addr)
{
	if (!strncmp(addr, "127.", 4) || !strncmp(addr, "localhost", 9))
		return true;
	return !strncmp(addr, "[::1]", 5) || !strcmp(addr, "::1");
}

/* Whether the peer's certificate CN is on the --allow-peer list (any, without one). */
static bool peer_allowed(const struct daemon *d, const char *cn)
{
	const char *p = d->allow, *comma;
	size_t n = strlen(cn);

	if (!*p)
		return true;
	for (; *p; p = *comma ? comma + 1 : comma) {
		comma = strchr(p, ',');
		if (!comma)
			comma = p + strlen(p);
		if ((size_t)(comma - p) == n && !strncmp(p, cn, n))
			return true;
	}
	return false;
}

static int parse_options(int argc, char **argv, struct daemon *d, const char **rundir_opt)
{
	enum { OPT_TLS = 256, OPT_INSECURE, OPT_RUNDIR, OPT_CONSOLE_DIR, OPT_IO_TIMEOUT,
	       OPT_MIN_FREE, OPT_MAX_MEM, OPT_HANDSHAKES, OPT_PER_PEER, OPT_RECEIVES,
	       OPT_RECEIVE_TIME, OPT_ROUNDS, OPT_INSECURE_NET, OPT_ALLOW };
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "tls-dir", required_argument, NULL, OPT_TLS },
		{ "insecure", no_argument, NULL, OPT_INSECURE },
		{ "insecure-network", no_argument, NULL, OPT_INSECURE_NET },
		{ "allow-peer", required_argument, NULL, OPT_ALLOW },
		{ "rundir", required_argument, NULL, OPT_RUNDIR },
		{ "console-dir", required_argument, NULL, OPT_CONSOLE_DIR },
		{ "io-timeout", required_argument, NULL, OPT_IO_TIMEOUT },
		{ "min-free", required_argument, NULL, OPT_MIN_FREE },
		{ "max-guest-mem", required_argument, NULL, OPT_MAX_MEM },
		{ "max-handshakes", required_argument, NULL, OPT_HANDSHAKES },
		{ "max-handshakes-per-peer", required_argument, NULL, OPT_PER_PEER },
		{ "max-receives", required_argument, NULL, OPT_RECEIVES },
		{ "max-receive-time", required_argument, NULL, OPT_RECEIVE_TIME },
		{ "max-rounds", required_argument, NULL, OPT_ROUNDS },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c, idx = 0;

	d->listen = "0.0.0.0";
	d->tls_dir = "/etc/kvm-migrate/x509";
	d->io_timeout_ms = MIGRATE_IO_TIMEOUT_MS;
	d->min_free = MIGRATE_MIN_FREE;
	d->lim.handshakes = ADMIT_DEFAULT_HANDSHAKES;
	d->lim.per_peer = ADMIT_DEFAULT_PER_PEER;
	d->lim.receives = ADMIT_DEFAULT_RECEIVES;
	d->lim.guest_mem = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
	d->receive_s = RECEIVE_TIME_DEFAULT_S;
	d->max_rounds = RECEIVE_ROUNDS_DEFAULT;
	while ((c = getopt_long(argc, argv, "l:vhV", longopts, &idx)) != -1) {
		switch (c) {
		case 'l': d->listen = optarg; break;
		case OPT_TLS: d->tls_dir = optarg; break;
		case OPT_INSECURE: d->insecure = true; break;
		case OPT_INSECURE_NET: d->insecure = d->insecure_network = true; break;
		case OPT_ALLOW: {
			size_t have = strlen(d->allow);

			if (!*optarg || strpbrk(optarg, " \t") ||
			    (size_t)snprintf(d->allow + have, sizeof(d->allow) - have, "%s%s",
					     have ? "," : "", optarg) >= sizeof(d->allow) - have) {
				fprintf(stderr, "kvm-migrated: --allow-peer '%s': certificate names, "
					"comma-separated, 1000 characters in all\n", optarg);
				return -1;
			}
			break;
		}
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
		case OPT_MAX_MEM:
			if (parse_size(optarg, &d->lim.guest_mem) != 0) {
				fprintf(stderr, "kvm-migrated: --max-guest-mem '%s': not a size (e.g. 16G)\n",
					optarg);
				return -1;
			}
			break;
		case OPT_HANDSHAKES:
		case OPT_PER_PEER:
		case OPT_RECEIVES:
		case OPT_RECEIVE_TIME:
		case OPT_ROUNDS: {
			uint64_t v;

			if (parse_u64(optarg, 1, 1000000, &v) != 0) {
				fprintf(stderr, "kvm-migrated: --%s '%s': need 1 to 1000000\n",
					longopts[idx].name, optarg);
				return -1;
			}
			if (c == OPT_HANDSHAKES)
				d->lim.handshakes = (unsigned int)v;
			else if (c == OPT_PER_PEER)
				d->lim.per_peer = (unsigned int)v;
			else if (c == OPT_RECEIVES)
				d->lim.receives = (unsigned int)v;
			else if (c == OPT_RECEIVE_TIME)
				d->receive_s = (unsigned int)v;
			else
				d->max_rounds = v;
			break;
		}
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
	if (d->insecure && !d->insecure_network && strncmp(d->listen, "unix:", 5) &&
	    !listen_is_loopback(d->listen)) {
		fprintf(stderr, "kvm-migrated: --insecure takes VMs from anyone who can connect, "
			"unauthenticated: give a loopback --listen address (127.0.0.1, [::1]), or "
			"say --insecure-network to listen on %s anyway\n", d->listen);
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
	    (r = control__start_ext(kvm, sock, control__join(migrate__control_table(kvm),
							      checkpoint__control_table(kvm)),
				    &control)) != 0) {
		log_error("VM %s: no control socket (%s): not starting it", kvm->name,
			  km_strerror(r));
		return r;
	}
	/* A Linux guest's console, where it was at the source: RUNDIR/NAME.console. */
	if (kvm->uart && (r = uart__listen_in(kvm->uart, d->rundir, kvm->name)) != 0)
		log_error("VM %s: no console socket (%s): not starting it", kvm->name,
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
	checkpoint__shutdown(kvm);
	migrate__shutdown(kvm);
	switch (kvm->stop_reason) {
	case KVM_STOP_DONE:
	case KVM_STOP_QUIT:
	case KVM_STOP_MIGRATED:
	case KVM_STOP_POWEROFF:
	case KVM_STOP_RESET:
		return 0;
	default:
		return 1;
	}
}

/*
 * The server key signs a handshake digest: in a connection's child, asked
 * of the daemon (admit.h), which has the key agent sign it (keyagent.h).
 * Neither process ever holds the key.
 */
static int child_sign(const uint8_t *digest, size_t len, uint8_t *sig, size_t *siglen, void *ctx)
{
	struct daemon *d = ctx;

	return admit__ask_sign(d->report_fd, digest, len, sig, siglen);
}

static int daemon_sign(const uint8_t *digest, size_t len, uint8_t *sig, size_t *siglen,
		       void *ctx)
{
	struct daemon *d = ctx;

	return d->agent_fd >= 0 ? keyagent__sign(d->agent_fd, digest, len, sig, siglen) :
	       KM_ERR_STATE;
}

/* The daemon's receive slots and guest memory budget (admit.h), asked by the receive. */
static int child_admit(uint64_t guest_bytes, void *ctx, char *why, size_t whylen)
{
	struct daemon *d = ctx;

	return admit__ask_receive(d->report_fd, guest_bytes, 10000, why, whylen);
}

/*
 * The receive's deadline, enforced inside reads as well: a peer trickling
 * a byte now and then stays within the I/O timeout but not within this.
 */
struct watchdog {
	pthread_t thread;
	int efd;		/* written to call it off */
	uint64_t deadline_ns;
	struct chan *c;
};

static void *watchdog_thread(void *arg)
{
	struct watchdog *w = arg;
	struct pollfd p = { .fd = w->efd, .events = POLLIN };
	uint64_t now;
	int r;

	while ((now = kvm__now_ns()) < w->deadline_ns) {
		uint64_t left_ms = (w->deadline_ns - now) / 1000000 + 1;

		r = poll(&p, 1, left_ms > 60000 ? 60000 : (int)left_ms);
		if (r > 0)
			return NULL;	/* called off */
	}
	/*
	 * Reads end (EOF), writes still work: the receive fails at once and
	 * can still tell the source why (REC_ERROR).
	 */
	shutdown(chan_fd(w->c), SHUT_RD);
	return NULL;
}

static int watchdog_start(struct watchdog *w, struct chan *c, uint64_t deadline_ns)
{
	w->c = c;
	w->deadline_ns = deadline_ns;
	if ((w->efd = eventfd(0, EFD_CLOEXEC)) < 0)
		return km_errno();
	if (pthread_create(&w->thread, NULL, watchdog_thread, w) != 0) {
		close(w->efd);
		w->efd = -1;
		return -EAGAIN;
	}
	return 0;
}

static void watchdog_stop(struct watchdog *w)
{
	uint64_t one = 1;

	if (w->efd < 0)
		return;
	(void)!write(w->efd, &one, sizeof(one));
	pthread_join(w->thread, NULL);
	close(w->efd);
	w->efd = -1;
}

static int child_main(struct daemon *d, int fd)
{
	struct watchdog wd = { .efd = -1 };
	struct migrate_incoming in = { .rundir = d->rundir, .on_publish = child_publish,
				       .admit = child_admit, .ctx = d };
	char err[CHAN_ERR_MAX] = "", console[4096];
	enum stream_purpose purpose;
	struct stream *s = NULL;
	struct chan *c = NULL;
	struct kvm *kvm = NULL;
	uint64_t caps;
	int r, status = 1;

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
	/* Past the handshake: no more signatures (the daemon refuses them now too). */
	chan_tls_free(d->tls);
	d->tls = NULL;
	chan_set_timeout(c, d->io_timeout_ms);
	if (!(s = stream_new(c)))
		goto out;

	/* A live peer: the caps it offers are negotiated, not refused (docs/protocol.md). */
	if ((r = stream_get_header_offer(s, &purpose, &caps)) != 0) {
		log_error("refused %s: bad stream header: %s", in.peer, km_strerror(r));
		migrate__send_error(s, r, km_strerror(r));
		goto out;
	}
	if (chan_is_tls(c) && !peer_allowed(d, chan_peer_cn(c))) {
		const uint8_t *p;
		uint32_t type, len;

		log_error("refused %s: its certificate name is not on this daemon's --allow-peer list",
			  in.peer);
		/* The config the source sent with its header, read so that the error arrives. */
		if (purpose == STREAM_MIGRATE)
			(void)stream_get(s, 64 * 1024, &type, &p, &len);
		migrate__send_error(s, KM_ERR_AUTH, "your certificate's name is not on this "
				    "daemon's --allow-peer list");
		goto out;
	}
	if (purpose == STREAM_QUERY) {
		/* Out of the handshake slots: a query is short and always answered. */
		(void)admit__report(d->report_fd, ADMIT_QUERY);
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
	in.deadline_ns = kvm__now_ns() + (uint64_t)d->receive_s * 1000000000ULL;
	in.max_rounds = d->max_rounds;
	/*
	 * The receive checks its deadline between records, and refuses
	 * cleanly; a peer that completes no record (a trickle) has its
	 * reads cut a little later.
	 */
	if ((r = watchdog_start(&wd, c, in.deadline_ns + 2000000000ULL)) != 0) {
		log_error("refused %s: no deadline thread: %s", in.peer, km_strerror(r));
		goto out;
	}
	r = migrate__receive(s, &in, &kvm);
	watchdog_stop(&wd);
	if (r != 0) {
		/* The source reads why (REC_ERROR) rather than a reset link. */
		chan_linger(c, 2000);
		goto out;
	}
	(void)admit__report(d->report_fd, ADMIT_VM);
	stream_free(s);
	s = NULL;
	chan_close(c);
	c = NULL;
	status = child_become_vm(d, kvm);
out:
	watchdog_stop(&wd);
	stream_free(s);
	chan_close(c);
	if (kvm)
		control__stop(kvm->control);
	kvm__destroy(kvm);
	return status;
}

static void reap(struct daemon *d)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (pid == d->agent_pid) {
			log_error("the key agent exited: no TLS handshake can succeed; restart "
				  "kvm-migrated (VMs it received run on)");
			d->agent_pid = 0;
			close(d->agent_fd);
			d->agent_fd = -1;
			continue;
		}
		admit__exited(d->admit, pid);
		if (WIFEXITED(st))
			log_debug("child %d exited with status %d", (int)pid, WEXITSTATUS(st));
		else if (WIFSIGNALED(st))
			log_warn("child %d killed by signal %d", (int)pid, WTERMSIG(st));
	}
}

/* The peer's address without its port, for the per-peer bound. */
static void peer_addr(const struct sockaddr_storage *ss, char *out, size_t len)
{
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)len);
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)len);
	else
		snprintf(out, len, "unix");
}

/* A refusal by the limits: logged at most once a second, with the count since. */
static void refused_by_limits(struct daemon *d, const char *why)
{
	uint64_t now = kvm__now_ns();

	unsigned int hs, rx, vms;

	d->refused++;
	if (now - d->refused_logged_ns < 1000000000ULL)
		return;
	admit__counts(d->admit, &hs, &rx, &vms);
	log_warn("refused a connection: %s (%llu refused since the last such line; here: %u in "
		 "their handshake, %u migrations arriving, %u VMs)", why,
		 (unsigned long long)d->refused, hs, rx, vms);
	d->refused = 0;
	d->refused_logged_ns = now;
}

static void accept_one(struct daemon *d, sigset_t *blocked)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char addr[64], why[160];
	int fd, sp[2];
	unsigned int uid;
	pid_t pid;

	fd = accept4(d->lfd, (struct sockaddr *)&ss, &sslen, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	/* A unix listener has no TLS: only this daemon's user and root may use it. */
	if (!strncmp(d->listen, "unix:", 5) && chan_unix_peer_check(fd, &uid) != 0) {
		log_error("refused a connection: uid %u may not use this unix socket (only uid %u "
			  "and root)", uid, (unsigned int)geteuid());
		close(fd);
		return;
	}
	peer_addr(&ss, addr, sizeof(addr));
	if (admit__may_accept(d->admit, addr, why, sizeof(why)) != 0) {
		refused_by_limits(d, why);
		close(fd);
		return;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		log_error("socketpair: %s", strerror(errno));
		close(fd);
		return;
	}
	pid = fork();
	if (pid < 0) {
		log_error("fork: %s", strerror(errno));
		close(fd);
		close(sp[0]);
		close(sp[1]);
		return;
	}
	if (pid == 0) {
		/*
		 * The child is a VM process to be: signals as kvm-run has them,
		 * in a session of its own, so that the daemon's terminal or
		 * process group going away (SIGHUP, a kill of the group) does
		 * not take the VMs it received along. It keeps none of the
		 * daemon's other sockets.
		 */
		sigprocmask(SIG_SETMASK, blocked, NULL);
		(void)setsid();
		close(d->lfd);
		close(sp[0]);
		if (d->agent_fd >= 0)
			close(d->agent_fd);	/* signatures go through the daemon only */
		d->agent_fd = -1;
		admit__free(d->admit);
		d->admit = NULL;
		d->report_fd = sp[1];
		_exit(child_main(d, fd));
	}
	close(sp[1]);
	close(fd);
	if (admit__add(d->admit, pid, addr, sp[0]) != 0) {
		log_error("out of memory: dropping the connection from %s", addr);
		kill(pid, SIGKILL);
		close(sp[0]);
	}
}

/* The daemon's poll set: signals, the listener, and each child's reports. */
struct pollset {
	struct pollfd *p;
	size_t cap;
};

static struct pollfd *pollset_fill(struct pollset *ps, struct daemon *d, int sfd, size_t *n)
{
	size_t want = 2 + admit__nr(d->admit), i;

	if (ps->cap < want) {
		struct pollfd *p = realloc(ps->p, want * sizeof(*p));

		if (!p)
			return NULL;
		ps->p = p;
		ps->cap = want;
	}
	ps->p[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	ps->p[1] = (struct pollfd){ .fd = d->lfd, .events = POLLIN };
	for (i = 2; i < want; i++)
		ps->p[i] = (struct pollfd){ .fd = admit__fd(d->admit, i - 2), .events = POLLIN };
	*n = want;
	return ps->p;
}

int main(int argc, char **argv)
{
	struct daemon d = { .lfd = -1, .report_fd = -1, .agent_fd = -1 };
	const char *rundir_opt = NULL;
	char err[CHAN_ERR_MAX] = "";
	struct pollset ps = { 0 };
	struct pollfd *pfd;
	struct signalfd_siginfo si;
	sigset_t set;
	size_t n, i;
	int sfd = -1, r, status = 3;

	if (parse_options(argc, argv, &d, &rundir_opt) < 0)
		return 2;
	log_init("kvm-migrated", d.verbose ? LOG_DEBUG : LOG_INFO);
	signal(SIGPIPE, SIG_IGN);
	/* First, with nothing else open: the only process that will read the key. */
	if (strncmp(d.listen, "unix:", 5) != 0 && !d.insecure &&
	    keyagent__start(d.tls_dir, &d.agent_fd, &d.agent_pid, err, sizeof(err)) != 0) {
		log_error("TLS: %s (use --tls-dir, or scripts/make-certs to create one)", err);
		goto out;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if ((sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
		log_error("signalfd: %s", strerror(errno));
		goto out;
	}
	if (!(d.admit = admit__new(&d.lim, daemon_sign, &d))) {
		log_error("out of memory");
		goto out;
	}
	if ((r = rundir_resolve(rundir_opt, d.rundir, sizeof(d.rundir))) != 0) {
		log_error("run directory %s: %s", d.rundir, rundir_strerror(r));
		goto out;
	}
	if (d.agent_fd >= 0 &&
	    chan_tls_new_remote_key(d.tls_dir, child_sign, &d, &d.tls, err, sizeof(err)) != 0) {
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
		if (!(pfd = pollset_fill(&ps, &d, sfd, &n))) {
			log_error("out of memory");
			break;
		}
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		/* The children's reports first: they free slots the listener may need. */
		for (i = n; i-- > 2;)
			if (pfd[i].revents)
				admit__serve(d.admit, i - 2);
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
	admit__free(d.admit);
	free(ps.p);
	chan_tls_free(d.tls);
	if (d.agent_fd >= 0)
		close(d.agent_fd);	/* the agent ends with it */
	if (d.agent_pid > 0)
		waitpid(d.agent_pid, NULL, 0);
	return status;
}
