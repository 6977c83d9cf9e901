/* The guest progress time series. See progress.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/kvm.h"
#include "kvm/progress.h"

int progress__init(struct progress_log *log)
{
	memset(log, 0, sizeof(*log));
	log->ring = calloc(PROGRESS_LOG_SIZE, sizeof(*log->ring));
	if (!log->ring)
		return -ENOMEM;
	pthread_mutex_init(&log->lock, NULL);
	return 0;
}

void progress__destroy(struct progress_log *log)
{
	if (!log || !log->ring)
		return;
	free(log->ring);
	log->ring = NULL;
	pthread_mutex_destroy(&log->lock);
}

void progress__record(struct progress_log *log, uint32_t vcpu, uint64_t counter,
		      uint64_t max_gap_tsc)
{
	struct progress_sample *s;
	struct progress_vcpu *v;
	uint64_t now_ns;

	if (vcpu >= KM_MAX_VCPUS)
		return;
	pthread_mutex_lock(&log->lock);
	now_ns = kvm__now_ns();
	s = &log->ring[log->head % PROGRESS_LOG_SIZE];
	s->host_ns = now_ns;
	s->counter = counter;
	s->max_gap_tsc = max_gap_tsc;
	s->vcpu = vcpu;
	log->head++;

	v = &log->vcpu[vcpu];
	if (v->reports == 0) {
		v->first_ns = now_ns;
		v->first_counter = counter;
	} else if (now_ns - v->last_ns > v->max_gap_ns) {
		v->max_gap_ns = now_ns - v->last_ns;
	}
	if (max_gap_tsc > v->max_guest_gap_tsc)
		v->max_guest_gap_tsc = max_gap_tsc;
	v->reports++;
	v->counter = counter;
	v->last_ns = now_ns;
	pthread_mutex_unlock(&log->lock);
}

void progress__get(struct progress_log *log, uint32_t vcpu, struct progress_vcpu *out)
{
	memset(out, 0, sizeof(*out));
	if (vcpu >= KM_MAX_VCPUS)
		return;
	pthread_mutex_lock(&log->lock);
	*out = log->vcpu[vcpu];
	pthread_mutex_unlock(&log->lock);
}

size_t progress__samples(struct progress_log *log, uint64_t since_ns,
			 struct progress_sample *out, size_t max)
{
	uint64_t first, i;
	size_t n = 0;

	pthread_mutex_lock(&log->lock);
	first = log->head > PROGRESS_LOG_SIZE ? log->head - PROGRESS_LOG_SIZE : 0;
	for (i = first; i < log->head && n < max; i++) {
		const struct progress_sample *s = &log->ring[i % PROGRESS_LOG_SIZE];

		if (s->host_ns >= since_ns)
			out[n++] = *s;
	}
	pthread_mutex_unlock(&log->lock);
	return n;
}
