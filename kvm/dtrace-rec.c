/* Recording a dirty trace: see dtrace-rec.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bitmap.h"
#include "dtrace.h"
#include "err.h"
#include "log.h"
#include "kvm/dirty.h"
#include "kvm/dtrace-rec.h"
#include "kvm/kvm.h"
#include "kvm/progress.h"

struct dtrace_recorder {
	struct kvm *kvm;
	char path[4096];
	int fd;
	int sub;
	uint64_t interval_ns;
	struct dtrace_writer *w;
	struct bitmap set;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* CLOCK_MONOTONIC: stop */
	bool stop;
	int error;			/* what ended the recording early */
	uint64_t harvest_ns, cpu_ns, intervals, pages, last_ns;
};

/* The guest's progress counters summed over its vCPUs; false while none reported. */
static bool rec__progress(struct kvm *kvm, uint64_t *sum)
{
	struct progress_vcpu pv;
	bool any = false;
	unsigned int i;

	*sum = 0;
	for (i = 0; i < kvm->nr_cpus && i < KM_MAX_VCPUS; i++) {
		progress__get(&kvm->progress, i, &pv);
		if (pv.reports) {
			*sum += pv.counter;
			any = true;
		}
	}
	return any;
}

/* Reads the interval's pages and writes them; the recorder's own thread only. */
static int rec__interval(struct dtrace_recorder *rec)
{
	uint64_t t0 = kvm__now_ns(), t1, progress;
	int64_t got;
	bool has;
	int r;

	got = dirty__read(&rec->kvm->dirty, rec->sub, &rec->set);
	t1 = kvm__now_ns();
	rec->harvest_ns += t1 - t0;
	if (got < 0)
		return (int)got;
	/* The interval runs from one read of the dirty set to the next. */
	has = rec__progress(rec->kvm, &progress);
	if ((r = dtrace__put_interval(rec->w, t1 - rec->last_ns, has ? &progress : NULL,
				      &rec->set)) != 0)
		return r;
	rec->last_ns = t1;
	rec->intervals++;
	rec->pages += (uint64_t)got;
	return 0;
}

static void *rec__thread(void *arg)
{
	struct dtrace_recorder *rec = arg;
	uint64_t next = rec->last_ns + rec->interval_ns;
	struct timespec ts;
	bool stop;
	int r = 0;

	pthread_setname_np(pthread_self(), "dirty-trace");
	for (;;) {
		pthread_mutex_lock(&rec->lock);
		ts.tv_sec = (time_t)(next / 1000000000ULL);
		ts.tv_nsec = (long)(next % 1000000000ULL);
		while (!rec->stop && kvm__now_ns() < next)
			pthread_cond_timedwait(&rec->cond, &rec->lock, &ts);
		stop = rec->stop;
		pthread_mutex_unlock(&rec->lock);
		/* The last interval is shorter: what was dirtied since the last read. */
		if ((r = rec__interval(rec)) != 0 || stop)
			break;
		/* On schedule, without drift; a late interval is longer, not followed by a burst. */
		next += rec->interval_ns;
		if (next < kvm__now_ns())
			next = kvm__now_ns() + rec->interval_ns;
	}
	rec->cpu_ns = kvm__thread_cpu_ns();
	rec->error = r;
	if (r)
		log_error("dirty trace %s: recording stopped after %llu intervals: %s", rec->path,
			  (unsigned long long)rec->intervals, km_strerror(r));
	return NULL;
}

static void rec__free(struct dtrace_recorder *rec)
{
	if (rec->sub >= 0)
		dirty__unsubscribe(&rec->kvm->dirty, rec->sub);
	dtrace__writer_free(rec->w);
	if (rec->fd >= 0)
		close(rec->fd);
	bitmap_free(&rec->set);
	pthread_cond_destroy(&rec->cond);
	pthread_mutex_destroy(&rec->lock);
	free(rec);
}

int dtrace_rec__start(struct kvm *kvm, const char *path, uint64_t interval_ms,
		      struct dtrace_recorder **out, char *err, size_t errlen)
{
	struct dtrace_info info = {
		.page_size = KM_PAGE_SIZE, .guest_pages = memory__nr_pages(&kvm->mem),
		.interval_ms = interval_ms, .vcpus = kvm->cfg.nr_vcpus,
	};
	struct dtrace_recorder *rec;
	pthread_condattr_t ca;
	int r;

	*out = NULL;
	if (!(rec = calloc(1, sizeof(*rec))))
		return -ENOMEM;
	rec->kvm = kvm;
	rec->fd = -1;
	rec->sub = -1;
	rec->interval_ns = interval_ms * 1000000ULL;
	snprintf(rec->path, sizeof(rec->path), "%s", path);
	pthread_mutex_init(&rec->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rec->cond, &ca);
	pthread_condattr_destroy(&ca);
	if ((r = bitmap_init(&rec->set, info.guest_pages)) != 0)
		goto out;
	if ((rec->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
		r = km_errno();
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		goto out;
	}
	info.start_wall_ns = kvm__wall_ns();
	if ((r = dtrace__writer_new(rec->fd, &info, &rec->w)) != 0) {
		snprintf(err, errlen, "%s: writing its header: %s", path, km_strerror(r));
		goto out;
	}
	/* Its own subscriber: only what is dirtied from now on, whatever others read. */
	if ((rec->sub = dirty__subscribe(&kvm->dirty, "dirty-trace", false)) < 0) {
		r = rec->sub;
		snprintf(err, errlen, "dirty tracking: %s", km_strerror(r));
		goto out;
	}
	rec->last_ns = kvm__now_ns();
	if ((r = -pthread_create(&rec->thread, NULL, rec__thread, rec)) != 0) {
		snprintf(err, errlen, "its thread: %s", strerror(-r));
		goto out;
	}
	rec->started = true;
	*out = rec;
	return 0;
out:
	rec__free(rec);
	return r;
}

int dtrace_rec__stop(struct dtrace_recorder *rec)
{
	struct dtrace_cost cost = { 0 };
	int r;

	if (!rec)
		return 0;
	pthread_mutex_lock(&rec->lock);
	rec->stop = true;
	pthread_cond_signal(&rec->cond);
	pthread_mutex_unlock(&rec->lock);
	if (rec->started)
		pthread_join(rec->thread, NULL);
	if ((r = rec->error) == 0) {
		cost.cpu_ns = rec->cpu_ns;
		cost.harvest_ns = rec->harvest_ns;
		cost.write_ns = dtrace__writer_ns(rec->w);
		cost.bytes = dtrace__writer_bytes(rec->w);
		if ((r = dtrace__finish(rec->w, &cost)) == 0 && fsync(rec->fd) != 0)
			r = km_errno();
		if (r)
			log_error("dirty trace %s: writing its trailer: %s", rec->path,
				  km_strerror(r));
		else
			log_info("dirty trace %s: %llu intervals, %llu pages, %llu bytes; cost "
				 "%.1f ms CPU; wall time %.1f ms reading dirty pages, %.1f ms writing",
				 rec->path, (unsigned long long)rec->intervals,
				 (unsigned long long)rec->pages, (unsigned long long)cost.bytes,
				 cost.cpu_ns / 1e6, cost.harvest_ns / 1e6, cost.write_ns / 1e6);
	}
	rec__free(rec);
	return r;
}
