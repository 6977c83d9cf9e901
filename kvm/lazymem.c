/* Guest RAM brought in after the VM starts: see lazymem.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "pages.h"
#include "kvm/kvm.h"
#include "kvm/lazymem.h"

#define LAZY_PREFETCH_RUN	64	/* pages read and placed between two looks at the faults */
#define LAZY_MSGS		32	/* fault messages read at once */

struct lazymem {
	struct kvm *kvm;
	int uffd, stop_fd;
	struct bitmap absent;		/* shared with memory__next_data (atomic bit clears) */
	struct lazy_source src;
	uint64_t next;			/* where the prefetch goes on */
	uint64_t t0;
	uint8_t *buf;			/* LAZY_PREFETCH_RUN pages */
	bool registered;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;		/* st */
	struct lazymem_stats st;
};

static bool lazy__absent(const struct lazymem *lm, uint64_t n)
{
	return (__atomic_load_n(&lm->absent.words[n / 64], __ATOMIC_ACQUIRE) >> (n % 64)) & 1;
}

/* Page n is in: memory__next_data finds it as data from now on. */
static void lazy__present(struct lazymem *lm, uint64_t n, bool touched)
{
	__atomic_fetch_and(&lm->absent.words[n / 64], ~(1ULL << (n % 64)), __ATOMIC_RELEASE);
	pthread_mutex_lock(&lm->lock);
	lm->st.absent--;
	if (touched)
		lm->st.faults++;
	else
		lm->st.prefetched++;
	pthread_mutex_unlock(&lm->lock);
}

/* The source failed: the VM cannot go on, and nothing may save what it holds. */
static void __attribute__((noreturn)) lazy__fatal(struct lazymem *lm, uint64_t n, const char *why)
{
	log_error("lazy restore of %s: page %llu: %s; the VM cannot go on with part of its "
		  "memory missing: exiting (the checkpoint store is untouched)",
		  lm->kvm->name ? lm->kvm->name : "the VM", (unsigned long long)n, why);
	_exit(EXIT_FAILURE);
}

/*
 * Places npages pages from lm->buf at page n. A page already there (the
 * guest touched it meanwhile and it was served) makes UFFDIO_COPY stop
 * with EEXIST after the ones before it: the rest are placed one by one.
 */
static void lazy__place(struct lazymem *lm, uint64_t n, unsigned int npages, bool touched)
{
	uint8_t *hva = memory__page_hva(&lm->kvm->mem, n);
	unsigned int i = 0;

	while (i < npages) {
		struct uffdio_copy c = {
			.dst = (uintptr_t)(hva + (uint64_t)i * KM_PAGE_SIZE),
			.src = (uintptr_t)(lm->buf + (uint64_t)i * KM_PAGE_SIZE),
			.len = (uint64_t)(npages - i) * KM_PAGE_SIZE,
		};

		if (ioctl(lm->uffd, UFFDIO_COPY, &c) == 0) {
			for (; i < npages; i++)
				lazy__present(lm, n + i, touched);
			return;
		}
		if (c.copy > 0) {
			for (uint64_t k = 0; k < (uint64_t)c.copy / KM_PAGE_SIZE; k++, i++)
				lazy__present(lm, n + i, touched);
			continue;
		}
		if (errno == EAGAIN)
			continue;
		if (errno != EEXIST) {
			char why[128];

			snprintf(why, sizeof(why), "UFFDIO_COPY: %s", strerror(errno));
			lazy__fatal(lm, n + i, why);
		}
		/* Already there: it was never absent from the VM's point of view since. */
		lazy__present(lm, n + i, touched);
		i++;
	}
}

static void lazy__wake(struct lazymem *lm, uint64_t hva)
{
	struct uffdio_range r = { .start = hva & ~(uint64_t)(KM_PAGE_SIZE - 1),
				  .len = KM_PAGE_SIZE };

	(void)ioctl(lm->uffd, UFFDIO_WAKE, &r);
}

/* A touched page: brought in (or zero-filled if it was never written), the toucher woken. */
static void lazy__serve(struct lazymem *lm, uint64_t addr)
{
	uint64_t base = (uintptr_t)lm->kvm->mem.base, t = kvm__now_ns(), n;
	char why[256];
	int r;

	if (addr < base || addr >= base + lm->kvm->mem.size)
		return;
	n = (addr - base) / KM_PAGE_SIZE;
	if (lazy__absent(lm, n)) {
		if ((r = lm->src.read(lm->src.ctx, n, lm->buf, why, sizeof(why))) != 0)
			lazy__fatal(lm, n, why);
		lazy__place(lm, n, 1, true);
	} else {
		struct uffdio_zeropage z = {
			.range = { .start = base + n * KM_PAGE_SIZE, .len = KM_PAGE_SIZE },
		};

		if (ioctl(lm->uffd, UFFDIO_ZEROPAGE, &z) != 0) {
			if (errno != EEXIST && errno != EAGAIN) {
				snprintf(why, sizeof(why), "UFFDIO_ZEROPAGE: %s", strerror(errno));
				lazy__fatal(lm, n, why);
			}
			lazy__wake(lm, addr);
		} else {
			pthread_mutex_lock(&lm->lock);
			lm->st.zero_faults++;
			pthread_mutex_unlock(&lm->lock);
		}
	}
	t = kvm__now_ns() - t;
	pthread_mutex_lock(&lm->lock);
	if (t > lm->st.max_fault_ns)
		lm->st.max_fault_ns = t;
	pthread_mutex_unlock(&lm->lock);
}

/* The next run of absent pages in page order, read and placed. */
static void lazy__prefetch(struct lazymem *lm)
{
	uint64_t n = bitmap_next_set(&lm->absent, lm->next), k;
	char why[256];
	unsigned int i;
	int r;

	if (n >= lm->absent.nbits) {
		/* Pages before where it went on are all in; should one not be, look again. */
		lm->next = 0;
		return;
	}
	for (i = 0, k = n; i < LAZY_PREFETCH_RUN && k < lm->absent.nbits && lazy__absent(lm, k);
	     i++, k++)
		if ((r = lm->src.read(lm->src.ctx, k, lm->buf + (uint64_t)i * KM_PAGE_SIZE, why,
				      sizeof(why))) != 0)
			lazy__fatal(lm, k, why);
	lazy__place(lm, n, i, false);
	lm->next = n + i;
}

static void lazy__unregister(struct lazymem *lm)
{
	struct uffdio_range r = { .start = (uintptr_t)lm->kvm->mem.base,
				  .len = lm->kvm->mem.size };

	/* Unregistering wakes whoever still waits on a fault: they fault again, normally. */
	if (lm->registered && ioctl(lm->uffd, UFFDIO_UNREGISTER, &r) != 0)
		log_warn("lazy restore: UFFDIO_UNREGISTER: %s", strerror(errno));
	lm->registered = false;
}

static void *lazy__thread(void *arg)
{
	struct lazymem *lm = arg;
	struct uffd_msg msg[LAZY_MSGS];
	struct pollfd pfd[2] = { { .fd = lm->uffd, .events = POLLIN },
				 { .fd = lm->stop_fd, .events = POLLIN } };
	uint64_t left;
	ssize_t got;
	int i;

	pthread_setname_np(pthread_self(), "lazy-restore");
	for (;;) {
		pthread_mutex_lock(&lm->lock);
		left = lm->st.absent;
		pthread_mutex_unlock(&lm->lock);
		if (!left)
			break;
		/* Faults first: a vCPU waits on them. The prefetch fills the gaps between. */
		if (poll(pfd, 2, lm->st.prefetch ? 0 : -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			return NULL;
		if (pfd[0].revents & POLLIN) {
			got = read(lm->uffd, msg, sizeof(msg));
			for (i = 0; got > 0 && i < got / (ssize_t)sizeof(msg[0]); i++)
				if (msg[i].event == UFFD_EVENT_PAGEFAULT)
					lazy__serve(lm, msg[i].arg.pagefault.address);
			continue;
		}
		if (lm->st.prefetch)
			lazy__prefetch(lm);
	}
	/* Every page is in: guest RAM is plain memory again. */
	lazy__unregister(lm);
	pthread_mutex_lock(&lm->lock);
	lm->st.done_ns = kvm__now_ns() - lm->t0;
	lm->st.active = false;
	pthread_mutex_unlock(&lm->lock);
	__atomic_store_n(&lm->kvm->mem.absent, NULL, __ATOMIC_RELEASE);
	log_info("lazy restore of %s: every page in after %.1f ms (%llu touched first, "
		 "%llu prefetched, longest wait %.3f ms)", lm->kvm->name ? lm->kvm->name : "the VM",
		 lm->st.done_ns / 1e6, (unsigned long long)lm->st.faults,
		 (unsigned long long)lm->st.prefetched, lm->st.max_fault_ns / 1e6);
	return NULL;
}

static void lazy__free(struct lazymem *lm)
{
	if (!lm)
		return;
	lazy__unregister(lm);
	if (lm->uffd >= 0)
		close(lm->uffd);
	if (lm->stop_fd >= 0)
		close(lm->stop_fd);
	bitmap_free(&lm->absent);
	if (lm->src.free)
		lm->src.free(lm->src.ctx);
	free(lm->buf);
	pthread_mutex_destroy(&lm->lock);
	free(lm);
}

int lazymem__start(struct kvm *kvm, struct bitmap *absent, const struct lazy_source *src,
		   bool prefetch, char *err, size_t errlen)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .range = { .start = (uintptr_t)kvm->mem.base,
						  .len = kvm->mem.size },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct lazymem *lm;
	int r;

	if (!(lm = calloc(1, sizeof(*lm)))) {
		bitmap_free(absent);
		if (src->free)
			src->free(src->ctx);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	lm->kvm = kvm;
	lm->uffd = lm->stop_fd = -1;
	lm->absent = *absent;
	memset(absent, 0, sizeof(*absent));
	lm->src = *src;
	lm->t0 = kvm__now_ns();
	pthread_mutex_init(&lm->lock, NULL);
	lm->st.total = lm->st.absent = bitmap_count(&lm->absent);
	lm->st.prefetch = prefetch;
	lm->st.active = true;
	if (!(lm->buf = malloc((size_t)LAZY_PREFETCH_RUN * KM_PAGE_SIZE))) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	lm->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (lm->uffd < 0) {
		r = km_errno();
		snprintf(err, errlen, "userfaultfd: %s%s", km_strerror(r),
			 r == -EPERM ? " (it needs root or CAP_SYS_PTRACE, or sysctl "
			 "vm.unprivileged_userfaultfd=1; or restore eagerly)" : "");
		goto fail;
	}
	if (ioctl(lm->uffd, UFFDIO_API, &api) != 0) {
		r = km_errno();
		snprintf(err, errlen, "UFFDIO_API: %s", km_strerror(r));
		goto fail;
	}
	if (!(api.features & UFFD_FEATURE_MISSING_SHMEM)) {
		r = -EOPNOTSUPP;
		snprintf(err, errlen, "this kernel's userfaultfd does not serve shared memory "
			 "(guest RAM is a memfd); restore eagerly");
		goto fail;
	}
	if (ioctl(lm->uffd, UFFDIO_REGISTER, &reg) != 0) {
		r = km_errno();
		snprintf(err, errlen, "UFFDIO_REGISTER of guest RAM: %s", km_strerror(r));
		goto fail;
	}
	lm->registered = true;
	if ((lm->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0) {
		r = km_errno();
		snprintf(err, errlen, "eventfd: %s", km_strerror(r));
		goto fail;
	}
	kvm->mem.absent = lm->absent.words;
	kvm->lazy = lm;
	if ((r = -pthread_create(&lm->thread, NULL, lazy__thread, lm)) != 0) {
		snprintf(err, errlen, "thread: %s", km_strerror(r));
		kvm->mem.absent = NULL;
		kvm->lazy = NULL;
		goto fail;
	}
	lm->started = true;
	return 0;
fail:
	lazy__free(lm);
	return r;
}

bool lazymem__stats(struct kvm *kvm, struct lazymem_stats *out)
{
	struct lazymem *lm = kvm->lazy;

	if (!lm)
		return false;
	pthread_mutex_lock(&lm->lock);
	*out = lm->st;
	pthread_mutex_unlock(&lm->lock);
	return true;
}

void lazymem__stop(struct kvm *kvm)
{
	struct lazymem *lm = kvm ? kvm->lazy : NULL;
	uint64_t one = 1;

	if (!lm)
		return;
	if (lm->started) {
		(void)!write(lm->stop_fd, &one, sizeof(one));
		pthread_join(lm->thread, NULL);
	}
	kvm->mem.absent = NULL;
	kvm->lazy = NULL;
	lazy__free(lm);
}
