/*
 * A restore's disk writes, staged in a new file beside the image that
 * replaces it only when the whole restore has succeeded: see
 * virtio_blk__stage in virtio-blk.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "kvm/virtio-blk-int.h"

/* Drops the staged file and goes back to the image, untouched. */
void virtio_blk__stage_abort(struct virtio_blk *b)
{
	if (!b->stage_path)
		return;
	if (unlink(b->stage_path) != 0)
		log_warn("disk %s: cannot remove the restore's staged file %s: %s", b->path,
			 b->stage_path, km_strerror(km_errno()));
	close(b->fd);
	b->fd = b->image_fd;
	b->image_fd = -1;
	free(b->stage_path);
	free(b->stage_target);
	b->stage_path = b->stage_target = NULL;
}

/*
 * Staged files of restores that were killed (.NAME.restore-XXXXXX in dir):
 * removed, unless locked (a restore under way, which cannot be: we hold
 * the image's lock; checked all the same).
 */
static void stage__sweep(struct virtio_blk *b, const char *dir, const char *name)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char prefix[NAME_MAX + 2];
	struct dirent *de;
	DIR *d;
	int dfd, fd;

	snprintf(prefix, sizeof(prefix), ".%s.restore-", name);
	if (!(d = opendir(dir)))
		return;
	dfd = dirfd(d);
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
		    strlen(de->d_name) != strlen(prefix) + 6)
			continue;
		fd = openat(dfd, de->d_name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (fcntl(fd, F_OFD_SETLK, &fl) == 0 && unlinkat(dfd, de->d_name, 0) == 0)
			log_info("disk %s: removed %s/%s, left by a restore that did not finish",
				 b->path, dir, de->d_name);
		close(fd);
	}
	closedir(d);
}

int virtio_blk__stage(struct virtio_blk *b)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char real[PATH_MAX], *name, *path = NULL, *target = NULL;
	struct stat st;
	int fd = -1, r;

	if (b->ro || !b->locked || b->stage_path)
		return KM_ERR_STATE;
	if (fstat(b->fd, &st) != 0) {
		r = km_errno();
		goto fail;
	}
	/* A block device cannot be renamed over: a restore writes it in place. */
	if (!S_ISREG(st.st_mode))
		return 0;
	/* A symlink's target is the file replaced (the link stays a link). */
	if (!realpath(b->path, real)) {
		r = km_errno();
		goto fail;
	}
	name = strrchr(real, '/');
	*name = '\0';
	stage__sweep(b, name == real ? "/" : real, name + 1);
	*name = '/';
	if (asprintf(&path, "%.*s/.%s.restore-XXXXXX", (int)(name - real), real, name + 1) < 0 ||
	    !(target = strdup(real))) {
		path = NULL;
		r = -ENOMEM;
		goto fail;
	}
	if ((fd = mkostemp(path, O_CLOEXEC)) < 0) {
		r = km_errno();
		goto fail;
	}
	/*
	 * The image's size, mode and (where we may) owner; locked as the
	 * image is, before anyone could find it under the image's name.
	 */
	if (ftruncate(fd, (off_t)b->size) != 0 || fchmod(fd, st.st_mode & 07777) != 0 ||
	    fcntl(fd, F_OFD_SETLK, &fl) != 0) {
		r = km_errno();
		unlink(path);
		goto fail;
	}
	if (fchown(fd, st.st_uid, st.st_gid) != 0 && errno != EPERM)
		log_warn("disk %s: the restore's file keeps our owner: %s", b->path,
			 km_strerror(km_errno()));
	b->image_fd = b->fd;
	b->fd = fd;
	b->stage_path = path;
	b->stage_target = target;
	return 0;
fail:
	log_error("disk %s: cannot stage the restore beside it (%s): %s", b->path,
		  path ? path : "out of memory", km_strerror(r));
	if (fd >= 0)
		close(fd);
	free(path);
	free(target);
	return r;
}

int virtio_blk__stage_commit(struct virtio_blk *b)
{
	char *slash;
	int dfd, r = 0;

	if (!b->stage_path)
		return virtio_blk__sync(b);
	if (fdatasync(b->fd) != 0 || rename(b->stage_path, b->stage_target) != 0) {
		r = km_errno();
		log_error("disk %s: the restored disk cannot replace the image: %s", b->path,
			  km_strerror(r));
		return r;
	}
	/* The image is the restored one now: the old one, unlinked, goes with its descriptor. */
	close(b->image_fd);
	b->image_fd = -1;
	slash = strrchr(b->stage_target, '/');
	*slash = '\0';
	dfd = open(slash == b->stage_target ? "/" : b->stage_target,
		   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL)) {
		r = km_errno();
		log_error("disk %s: the image's directory: fsync: %s", b->path, km_strerror(r));
	}
	if (dfd >= 0)
		close(dfd);
	free(b->stage_path);
	free(b->stage_target);
	b->stage_path = b->stage_target = NULL;
	return r;
}
