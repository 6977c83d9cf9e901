/* kmwork's disk mode (disk.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest-linux/disk.h"
#include "guest-linux/stamp.h"

/* Opens dev, O_DIRECT if it can be; *blocks: whole blocks in it. -1 (said) on failure. */
static int disk_open(const char *dev, int flags, uint64_t *blocks)
{
	off_t end;
	int fd = open(dev, flags | O_DIRECT | O_CLOEXEC, 0644);

	/* tmpfs and some file systems refuse O_DIRECT: plain I/O, synced, then. */
	if (fd < 0 && errno == EINVAL)
		fd = open(dev, flags | O_CLOEXEC, 0644);
	if (fd < 0) {
		printf("KMWORK error: %s: %s\n", dev, strerror(errno));
		return -1;
	}
	end = lseek(fd, 0, SEEK_END);
	*blocks = end > 0 ? (uint64_t)end / STAMP_SIZE : 0;
	return fd;
}

int disk_write(const char *dev, uint64_t blocks, uint64_t version)
{
	uint64_t have, b;
	void *buf = NULL;
	int fd, st = 1;

	/* On the host, an image file that is not there yet is made. */
	if ((fd = disk_open(dev, O_WRONLY | O_CREAT, &have)) < 0)
		return 1;
	if (posix_memalign(&buf, STAMP_SIZE, STAMP_SIZE) != 0) {
		printf("KMWORK error: out of memory\n");
		goto out;
	}
	/* Past a device's end pwrite fails (ENOSPC, said below); a file grows. */
	for (b = 0; b < blocks; b++) {
		stamp_fill(buf, b, version);
		if (pwrite(fd, buf, STAMP_SIZE, (off_t)(b * STAMP_SIZE)) != STAMP_SIZE) {
			printf("KMWORK error: %s: writing block %" PRIu64 ": %s\n", dev, b,
			       strerror(errno ? errno : EIO));
			goto out;
		}
	}
	if (fsync(fd) < 0) {
		printf("KMWORK error: %s: fsync: %s\n", dev, strerror(errno));
		goto out;
	}
	printf("KMWORK disk-write dev=%s blocks=%" PRIu64 " version=%" PRIu64 "\n", dev,
	       blocks, version);
	st = 0;
out:
	free(buf);
	close(fd);
	return st;
}

int disk_verify(const char *dev, uint64_t blocks, uint64_t version)
{
	uint64_t have, b, bad = 0, first = 0, lo = UINT64_MAX, hi = 0, v;
	uint64_t *buf = NULL;
	int fd, st = 1;

	if ((fd = disk_open(dev, O_RDONLY, &have)) < 0)
		return 1;
	if (!blocks)
		blocks = have;
	if (posix_memalign((void **)&buf, STAMP_SIZE, STAMP_SIZE) != 0) {
		printf("KMWORK error: out of memory\n");
		goto out;
	}
	for (b = 0; b < blocks; b++) {
		/* A block past the end reads short: bad, as a lost write would be. */
		if (pread(fd, buf, STAMP_SIZE, (off_t)(b * STAMP_SIZE)) != STAMP_SIZE)
			memset(buf, 0, STAMP_SIZE);
		v = buf[1];
		if (stamp_bad(buf, b, v) || v == 0 || (version && v != version)) {
			if (bad++ == 0)
				first = b;
			continue;
		}
		if (v < lo)
			lo = v;
		if (v > hi)
			hi = v;
	}
	printf("KMWORK disk-verify dev=%s blocks=%" PRIu64 " bad=%" PRIu64 " versions=%" PRIu64
	       "-%" PRIu64, dev, blocks, bad, lo == UINT64_MAX ? 0 : lo, hi);
	if (bad)
		printf(" first_bad=%" PRIu64, first);
	printf("\n");
	st = 0;
out:
	free(buf);
	close(fd);
	return st;
}

