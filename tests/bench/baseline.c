/* The machine's reference limits. See baseline.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "tests/bench/baseline.h"

#define PAGE		4096ULL
#define COPY_MAX	(256ULL << 20)
#define COPY_REPEAT	5
#define TOUCH_PASSES	3

static uint64_t baseline__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int baseline__memcpy(uint64_t bytes, struct baseline *out)
{
	uint8_t *src = malloc(bytes), *dst = malloc(bytes);
	uint64_t best = UINT64_MAX, t;
	unsigned int i;

	if (!src || !dst) {
		free(src);
		free(dst);
		return -ENOMEM;
	}
	/* Both buffers populated first: this is bandwidth, not page faults. */
	memset(src, 0x5a, bytes);
	memset(dst, 0, bytes);
	for (i = 0; i < COPY_REPEAT; i++) {
		t = baseline__now_ns();
		memcpy(dst, src, bytes);
		t = baseline__now_ns() - t;
		if (t < best)
			best = t;
	}
	/* Keeps the copy from being optimised away. */
	if (dst[bytes / 2] != 0x5a)
		best = 0;
	free(src);
	free(dst);
	if (!best)
		return KM_ERR_INVALID;
	out->memcpy_bytes = bytes;
	out->memcpy_gbs = (double)bytes / (double)best;
	return 0;
}

/* One 8-byte write per page, as the benchmark's guests do. */
static uint64_t baseline__touch_pass(uint8_t *p, uint64_t pages, uint64_t v)
{
	uint64_t t = baseline__now_ns(), i;

	for (i = 0; i < pages; i++)
		*(volatile uint64_t *)(p + i * PAGE) = v;
	return baseline__now_ns() - t;
}

static int baseline__touch(uint64_t bytes, struct baseline *out)
{
	uint64_t pages = bytes / PAGE, best = UINT64_MAX, t;
	unsigned int i;
	uint8_t *p;
	int fd, r = 0;

	/* A memfd, shared, like guest RAM (kvm/memory.h): the same fault path. */
	fd = memfd_create("bench-baseline", MFD_CLOEXEC);
	if (fd < 0)
		return km_errno();
	if (ftruncate(fd, (off_t)bytes) < 0) {
		r = km_errno();
		close(fd);
		return r;
	}
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return km_errno();
	t = baseline__touch_pass(p, pages, 1);
	out->touch_first_pps = (double)pages * 1e9 / (double)t;
	for (i = 0; i < TOUCH_PASSES; i++) {
		t = baseline__touch_pass(p, pages, i + 2);
		if (t < best)
			best = t;
	}
	out->touch_pps = (double)pages * 1e9 / (double)best;
	out->touch_pages = pages;
	munmap(p, bytes);
	return r;
}

int baseline__measure(uint64_t touch_bytes, struct baseline *out)
{
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = baseline__memcpy(touch_bytes < COPY_MAX ? touch_bytes : COPY_MAX, out)) != 0)
		return r;
	return baseline__touch(touch_bytes, out);
}

void baseline__print(const char *prefix, const struct baseline *b)
{
	printf("# %s: memcpy %.2f GB/s (%llu MiB, best of %d); "
	       "one 8-byte write per 4 KiB page of a memfd over %llu MiB: "
	       "first touch %.0f kpages/s, populated %.0f kpages/s\n",
	       prefix, b->memcpy_gbs, (unsigned long long)(b->memcpy_bytes >> 20), COPY_REPEAT,
	       (unsigned long long)(b->touch_pages * PAGE >> 20),
	       b->touch_first_pps / 1e3, b->touch_pps / 1e3);
}
