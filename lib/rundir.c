/* Run directory, control socket paths and name reservations. See rundir.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "rundir.h"

static int rundir_mkdirs(const char *path)
{
	char tmp[4096];
	size_t i, n = strlen(path);

	if (n == 0 || n >= sizeof(tmp))
		return KM_ERR_INVALID;
	memcpy(tmp, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != 0)
			continue;
		tmp[i] = 0;
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return km_errno();
		tmp[i] = path[i];
	}
	return 0;
}

/*
 * The directory is ours alone: not a symlink (-ELOOP), owned by us
 * (KM_ERR_AUTH), no access for others (KM_ERR_STATE).
 */
static int rundir_check(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), r = 0;

	if (fd < 0)
		return errno == ENOTDIR ? -ELOOP : km_errno();
	if (fstat(fd, &st) < 0)
		r = km_errno();
	else if (st.st_uid != geteuid())
		r = KM_ERR_AUTH;
	else if (st.st_mode & 077)
		r = KM_ERR_STATE;
	close(fd);
	return r;
}

int rundir_resolve(const char *opt, char *out, size_t len)
{
	const char *env = getenv("KVM_MIGRATE_RUNDIR");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n, r;

	if (opt && *opt)
		n = snprintf(out, len, "%s", opt);
	else if (env && *env)
		n = snprintf(out, len, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(out, len, "/run/kvm-migrate");
	else if (xdg && *xdg)
		n = snprintf(out, len, "%s/kvm-migrate", xdg);
	else
		return KM_ERR_INVALID;
	if (n < 0 || (size_t)n >= len)
		return KM_ERR_TOO_LARGE;
	if ((r = rundir_mkdirs(out)) != 0)
		return r;
	return rundir_check(out);
}

int rundir_valid_name(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > 48 || name[0] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

int rundir_socket_path(const char *dir, const char *name, char *out, size_t len)
{
	struct sockaddr_un sun;
	int n;

	if (strchr(name, '/'))
		n = snprintf(out, len, "%s", name);
	else if (!rundir_valid_name(name))
		return KM_ERR_INVALID;
	else
		n = snprintf(out, len, "%s/%s.sock", dir, name);
	if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(sun.sun_path))
		return KM_ERR_TOO_LARGE;
	return 0;
}

const char *rundir_strerror(int r)
{
	switch (r) {
	case -ELOOP:
		return "it is a symlink (or not a directory): a run directory must be a real one";
	case KM_ERR_AUTH:
		return "it is not owned by this user: another user could reach the VMs' sockets";
	case KM_ERR_STATE:
		return "it is open to others: it must be closed to others (chmod 700)";
	case KM_ERR_INVALID:
		return "none given and XDG_RUNTIME_DIR is not set: use --rundir or "
		       "KVM_MIGRATE_RUNDIR";
	default:
		return km_strerror(r);
	}
}

/* ---- name reservations ---------------------------------------------------- */

void rundir_name_init(struct rundir_name *rn)
{
	memset(rn, 0, sizeof(*rn));
	rn->fd = -1;
}

/* Write-locks the whole file: 0, KM_ERR_STATE if another holds it, or an error. */
static int rundir_lock(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	return errno == EAGAIN || errno == EACCES ? KM_ERR_STATE : km_errno();
}

static int rundir_paths(const char *dir, const char *name, struct rundir_name *rn)
{
	int a, b;

	if (!rundir_valid_name(name))
		return KM_ERR_INVALID;
	a = snprintf(rn->lock, sizeof(rn->lock), "%s/%s.lock", dir, name);
	b = snprintf(rn->state, sizeof(rn->state), "%s/%s.state", dir, name);
	if (a < 0 || b < 0 || (size_t)a >= sizeof(rn->lock) || (size_t)b >= sizeof(rn->state))
		return KM_ERR_TOO_LARGE;
	return 0;
}

static int rundir_open_lock(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	return fd < 0 ? km_errno() : fd;
}

/*
 * Creates the state file holding word, atomically and only if there is
 * none (a link of a finished temporary file): 0, KM_ERR_STATE if one
 * exists, or an error.
 */
static int rundir_state_create(const char *state, const char *word)
{
	char tmp[4200];
	size_t n = strlen(word);
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", state, (int)getpid());
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return km_errno();
	if (write(fd, word, n) != (ssize_t)n)
		r = errno ? km_errno() : -EIO;
	close(fd);
	if (r == 0 && link(tmp, state) < 0)
		r = errno == EEXIST ? KM_ERR_STATE : km_errno();
	unlink(tmp);
	return r;
}

/* The word in the state file: 1 running, 0 aborted, <0 none or unreadable. */
static int rundir_state_read(const char *state)
{
	char w[16] = "";
	ssize_t n;
	int fd = open(state, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return km_errno();
	n = read(fd, w, sizeof(w) - 1);
	close(fd);
	if (n <= 0)
		return KM_ERR_CORRUPT;
	w[n] = 0;
	if (!strcmp(w, "running"))
		return 1;
	if (!strcmp(w, "aborted"))
		return 0;
	return KM_ERR_CORRUPT;
}

int rundir_reserve(const char *dir, const char *name, struct rundir_name *rn,
		   unsigned int wait_ms)
{
	struct timespec tick = { 0, 20000000L };	/* a 20 ms poll of the lock */
	unsigned int waited = 0;
	int fd, r;

	rundir_name_init(rn);
	if ((r = rundir_paths(dir, name, rn)) != 0)
		return r;
	if ((fd = rundir_open_lock(rn->lock)) < 0)
		return fd;
	while ((r = rundir_lock(fd)) == KM_ERR_STATE && waited < wait_ms) {
		/* Held: an undecided holder is decided out; a running VM is not. */
		if (waited == 0) {
			r = rundir_state_create(rn->state, "aborted");
			if (r == KM_ERR_STATE && rundir_state_read(rn->state) == 1)
				break;
			r = KM_ERR_STATE;
		}
		nanosleep(&tick, NULL);
		waited += 20;
	}
	if (r != 0) {
		close(fd);
		return r;
	}
	/* Ours now: a state left by a holder that died, or that we aborted, is stale. */
	if (unlink(rn->state) < 0 && errno != ENOENT) {
		r = km_errno();
		close(fd);
		return r;
	}
	rn->fd = fd;
	return 0;
}

int rundir_decide_running(struct rundir_name *rn)
{
	int r;

	if (rn->fd < 0)
		return KM_ERR_STATE;
	r = rundir_state_create(rn->state, "running");
	if (r != KM_ERR_STATE)
		return r;
	/* A query came first: it said this VM does not run here, and never will. */
	return rundir_state_read(rn->state) == 1 ? 0 : KM_ERR_CANCELED;
}

void rundir_release(struct rundir_name *rn)
{
	if (rn->fd < 0)
		return;
	/* The state goes while the lock is still ours: never a newer holder's. */
	unlink(rn->state);
	close(rn->fd);
	rn->fd = -1;
}

enum rundir_presence rundir_query(const char *dir, const char *name)
{
	struct rundir_name q;
	int fd, r;

	rundir_name_init(&q);
	if (rundir_paths(dir, name, &q) != 0)
		return RUNDIR_UNKNOWN;
	if ((fd = rundir_open_lock(q.lock)) < 0)
		return RUNDIR_UNKNOWN;
	r = rundir_lock(fd);
	if (r == 0) {
		/* Nobody holds the name: no VM of it runs, and a stale state goes. */
		r = unlink(q.state) < 0 && errno != ENOENT ? -1 : 0;
		close(fd);
		return r == 0 ? RUNDIR_ABSENT : RUNDIR_UNKNOWN;
	}
	close(fd);
	if (r != KM_ERR_STATE)
		return RUNDIR_UNKNOWN;
	/* Held: decided already, or decide now that the holder never starts. */
	r = rundir_state_create(q.state, "aborted");
	if (r == 0)
		return RUNDIR_ABSENT;
	if (r != KM_ERR_STATE)
		return RUNDIR_UNKNOWN;
	r = rundir_state_read(q.state);
	return r == 1 ? RUNDIR_RUNNING : r == 0 ? RUNDIR_ABSENT : RUNDIR_UNKNOWN;
}
