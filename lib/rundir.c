/* Run directory and control socket paths. See rundir.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
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

int rundir_resolve(const char *opt, char *out, size_t len)
{
	const char *env = getenv("KVM_MIGRATE_RUNDIR");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (opt && *opt)
		n = snprintf(out, len, "%s", opt);
	else if (env && *env)
		n = snprintf(out, len, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(out, len, "/run/kvm-migrate");
	else if (xdg && *xdg)
		n = snprintf(out, len, "%s/kvm-migrate", xdg);
	else
		n = snprintf(out, len, "/tmp/kvm-migrate-%u", (unsigned int)geteuid());
	if (n < 0 || (size_t)n >= len)
		return KM_ERR_TOO_LARGE;
	return rundir_mkdirs(out);
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
