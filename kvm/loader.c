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

	/* A path: loader__image_read says what is wrong with it, if anything. */
	if (strchr(name, '/')) {
		if ((size_t)snprintf(path, len, "%s", name) >= len)
			return KM_ERR_TOO_LARGE;
		return 0;
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

/* Formats a guest image must not be, and what to do instead. */
static int loader__refuse_format(const char *path, const unsigned char *p, size_t n)
{
	if (n >= 4 && memcmp(p, "\x7f" "ELF", 4) == 0) {
		log_error("guest image %s: an ELF file, not a flat image; make the image with "
			  "objcopy -O binary --set-section-flags .bss=alloc,load,contents "
			  "%s IMAGE.bin (docs/guests.md s.8)", path, path);
		return KM_ERR_BAD_MAGIC;
	}
	/* The boot protocol's "HdrS" at 0x202 (Documentation/arch/x86/boot.rst). */
	if (n >= 0x206 && memcmp(p + 0x202, "HdrS", 4) == 0) {
		log_error("guest image %s: a Linux kernel, not a flat image; boot it with --kernel",
			  path);
		return KM_ERR_BAD_MAGIC;
	}
	return 0;
}

int loader__image_read(const char *path, struct loader_image *img)
{
	struct stat st;
	void *data = NULL;
	ssize_t n, got;
	int fd, r;

	img->data = NULL;
	img->size = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = km_errno();
		log_error("guest image %s: %s", path, km_strerror(r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = km_errno();
		log_error("guest image %s: %s", path, km_strerror(r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		log_error("guest image %s: not a regular file", path);
		r = KM_ERR_INVALID;
		goto out;
	}
	if (st.st_size == 0) {
		log_error("guest image %s: empty; a flat image holds 1 to %llu bytes", path,
			  (unsigned long long)KM_IMAGE_MAX);
		r = KM_ERR_INVALID;
		goto out;
	}
	/* Up to one byte past the limit: enough to tell a format and a size apart. */
	n = st.st_size > (off_t)KM_IMAGE_MAX ? (ssize_t)KM_IMAGE_MAX + 1 : (ssize_t)st.st_size;
	if (!(data = malloc((size_t)n))) {
		r = -ENOMEM;
		goto out;
	}
	if ((got = pread(fd, data, (size_t)n, 0)) != n) {
		r = got < 0 ? km_errno() : KM_ERR_TRUNCATED;
		log_error("guest image %s: %s", path, got < 0 ? km_strerror(r) :
			  "shorter than it was a moment ago");
		goto out;
	}
	if ((r = loader__refuse_format(path, data, (size_t)n)) != 0)
		goto out;
	if ((uint64_t)st.st_size > KM_IMAGE_MAX) {
		log_error("guest image %s: %lld bytes, more than the %llu bytes (KM_IMAGE_MAX, "
			  ".bss included) an image may hold", path, (long long)st.st_size,
			  (unsigned long long)KM_IMAGE_MAX);
		r = KM_ERR_TOO_LARGE;
		goto out;
	}
	img->data = data;
	img->size = (size_t)n;
	data = NULL;
	r = 0;
out:
	free(data);
	close(fd);
	return r;
}

void loader__image_free(struct loader_image *img)
{
	if (!img)
		return;
	free(img->data);
	img->data = NULL;
	img->size = 0;
}

int loader__image_load(struct kvm *kvm, const struct loader_image *img, uint64_t *entry)
{
	int r;

	if ((r = memory__write(&kvm->mem, KM_IMAGE_GPA, img->data, img->size)) != 0)
		return r;
	*entry = KM_IMAGE_GPA;
	return 0;
}

int loader__load_flat(struct kvm *kvm, const char *path, uint64_t *entry)
{
	struct loader_image img;
	int r;

	if ((r = loader__image_read(path, &img)) != 0)
		return r;
	r = loader__image_load(kvm, &img, entry);
	loader__image_free(&img);
	return r;
}

void loader__image_name(const char *path, char *name, size_t len)
{
	const char *base = strrchr(path, '/');
	size_t n;

	base = base ? base + 1 : path;
	n = strlen(base);
	if (n > 4 && strcmp(base + n - 4, ".bin") == 0)
		n -= 4;
	if (!len)
		return;
	if (n >= len)
		n = len - 1;
	memcpy(name, base, n);
	name[n] = 0;
}
