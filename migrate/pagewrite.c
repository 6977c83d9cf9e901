/* Writing arriving pages through the memfd: see pagewrite.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "migrate/pagewrite.h"

static const uint8_t zero_page[PAGE_SIZE_4K];

int pagewrite__init(struct pagewrite *pw, int memfd)
{
	memset(pw, 0, sizeof(*pw));
	pw->fd = memfd;
	if (!(pw->scratch = malloc((size_t)PAGEWRITE_RUN * PAGE_SIZE_4K)))
		return -ENOMEM;
	return 0;
}

void pagewrite__free(struct pagewrite *pw)
{
	free(pw->scratch);
	pw->scratch = NULL;
}

int pagewrite__flush(struct pagewrite *pw)
{
	struct iovec *iov = pw->iov;
	unsigned int cnt = pw->n;
	off_t off = (off_t)(pw->first * PAGE_SIZE_4K);
	ssize_t w;

	while (cnt > 0) {
		w = pwritev(pw->fd, iov, (int)cnt, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? km_errno() : -EIO;
		off += w;
		/* A short write: skip what went out, resume mid-page if need be. */
		while (cnt > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0 && w > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	pw->n = 0;
	pw->used = 0;
	return 0;
}

int pagewrite__add(struct pagewrite *pw, uint64_t n, enum page_kind kind, const uint8_t *data,
		   uint32_t len)
{
	const uint8_t *src;
	uint8_t *dst;
	int r;

	/* Runs are of consecutive pages, and lz4 pages need a scratch slot. */
	if (pw->n > 0 && (n != pw->first + pw->n || pw->n == PAGEWRITE_RUN ||
			  (kind == PAGE_LZ4 && pw->used == PAGEWRITE_RUN)))
		if ((r = pagewrite__flush(pw)) != 0)
			return r;
	switch (kind) {
	case PAGE_ZERO:
		src = zero_page;
		break;
	case PAGE_RAW:
		if (len != PAGE_SIZE_4K)
			return KM_ERR_CORRUPT;
		src = data;
		break;
	case PAGE_LZ4:
		dst = pw->scratch + (size_t)pw->used * PAGE_SIZE_4K;
		if ((r = pages_expand(kind, data, len, dst)) != 0)
			return r;
		pw->used++;
		src = dst;
		break;
	default:
		return KM_ERR_CORRUPT;
	}
	if (pw->n == 0)
		pw->first = n;
	pw->iov[pw->n].iov_base = (void *)(uintptr_t)src;
	pw->iov[pw->n].iov_len = PAGE_SIZE_4K;
	pw->n++;
	return 0;
}
