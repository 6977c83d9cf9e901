/* Guest images: lookup and loading. See loader.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "kvm/kvm.h"
#include "kvm/loader.h"

#ifndef KM_GUEST_DIR
#define KM_GUEST_DIR "/usr/local/lib/kvm-migrate/guests"
#endif

static int loader__try(const char *dir, const char *sub, const char *name,
		       char *path, size_t len)
{
	int n = snprintf(path, len, "%s%s/%s.bin", dir, sub, name);

	if (n < 0 || (size_t)n >= len)
		return 0;
	return access(path, R_OK) == 0;
}

int loader__find_guest(const char *name, char *path, size_t len)
{
	const char *env = getenv("KVM_MIGRATE_GUEST_DIR");
	char exe[4096], *dir;
	ssize_t n;

	if (strchr(name, '/')) {
		if ((size_t)snprintf(path, len, "%s", name) >= len)
			return KM_ERR_TOO_LARGE;
		return access(path, R_OK) == 0 ? 0 : km_errno();
	}
	if (!*name || strchr(name, '.'))
		return KM_ERR_INVALID;
	if (env && *env && loader__try(env, "", name, path, len))
		return 0;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		dir = dirname(exe);
		if (loader__try(dir, "/guest", name, path, len) ||
		    loader__try(dir, "/../kvm/guest", name, path, len))
			return 0;
	}
	if (loader__try(KM_GUEST_DIR, "", name, path, len))
		return 0;
	log_error("guest '%s' not found (looked in $KVM_MIGRATE_GUEST_DIR, next to the "
		  "binary, and %s)", name, KM_GUEST_DIR);
	return -ENOENT;
}

int loader__load_flat(struct kvm *kvm, const char *path, uint64_t *entry)
{
	struct stat st;
	void *data = NULL;
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = km_errno();
		log_error("%s: %s", path, km_strerror(r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = km_errno();
		goto out;
	}
	if (st.st_size <= 0 || (uint64_t)st.st_size > KM_IMAGE_MAX) {
		log_error("%s: %lld bytes; a guest image holds 1 to %llu bytes", path,
			  (long long)st.st_size, (unsigned long long)KM_IMAGE_MAX);
		r = KM_ERR_TOO_LARGE;
		goto out;
	}
	data = malloc(st.st_size);
	if (!data) {
		r = -ENOMEM;
		goto out;
	}
	n = read(fd, data, st.st_size);
	if (n != st.st_size) {
		r = n < 0 ? km_errno() : KM_ERR_TRUNCATED;
		log_error("%s: short read", path);
		goto out;
	}
	if ((r = memory__write(&kvm->mem, KM_IMAGE_GPA, data, st.st_size)) != 0)
		goto out;
	*entry = KM_IMAGE_GPA;
out:
	free(data);
	close(fd);
	return r;
}
