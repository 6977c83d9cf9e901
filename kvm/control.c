/* The control socket server. See control.h and docs/control.md. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"

#include "chan.h"
#include "err.h"
#include "log.h"
#include "qmp.h"
#include "kvm/control.h"
#include "kvm/dirtylimit.h"
#include "kvm/dirtyrate.h"
#include "kvm/kvm.h"
#include "kvm/stats.h"

#define CONTROL_MAX_CLIENTS	16
#define CHECK_TIMEOUT_MS	60000

/*
 * A client. Its requests are answered in order; a long one (check,
 * query-dirty-rate: seconds) runs on a worker thread of its own while the
 * control thread goes on serving the other clients, so that a cancel or a
 * quit is never stuck behind it. The client is not read meanwhile.
 *
 * Three kinds of thread write to a client: the control thread (greeting,
 * replies), its worker (a long command's reply) and any thread that emits
 * an event (control__event). send_lock is held for the whole of each line,
 * so lines never interleave, and for every change of fd, so an emitter
 * never writes to a descriptor that was closed (or reused) meanwhile.
 */
struct control_client {
	pthread_mutex_t send_lock;	/* fd, events, broken; each line sent */
	int fd;
	bool events;		/* asked for events (qmp_capabilities enable) */
	bool broken;		/* a line did not fit: nothing more is sent, it is dropped */
	struct qmp_linebuf *lb;
	bool busy;		/* a worker answers its current request */
	atomic_bool done;	/* the worker has answered (control thread joins it) */
	bool gone;		/* the worker could not send: drop the client */
	pthread_t worker;
	struct qmp_request req;	/* the worker's request */
	struct control *c;
};

struct control {
	struct kvm *kvm;
	int listen_fd;
	int wake_fd;		/* eventfd: control__stop */
	int done_fd;		/* eventfd: a worker has answered */
	char path[108];
	dev_t dev;		/* the socket file we made: only that one is removed */
	ino_t ino;
	bool published;
	pthread_t thread;
	const struct control_cmd *extra;
	struct control_client clients[CONTROL_MAX_CLIENTS];
};

/*
 * Events go to the clients of the VM's control socket, found through
 * kvm->control: this lock makes that pointer safe to follow from any
 * thread (control__stop clears it under the lock before it frees), and
 * makes every client see the events in the same order.
 */
static pthread_mutex_t control__events_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * One whole line, or an error: -EAGAIN when the client's socket buffer is
 * full (the sockets are non-blocking: never a wait; the client is
 * dropped), else -EPIPE or another -errno when it is gone.
 */
static int control__send_line(int fd, const char *line)
{
	size_t len, off = 0;
	ssize_t n;

	len = strlen(line);
	while (off < len) {
		n = send(fd, line + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : km_errno();
		if (n == 0)
			return -EPIPE;
		off += (size_t)n;
	}
	return 0;
}

/* To a socket that is in no client slot yet (or no more); line freed. */
static int control__send(int fd, char *line)
{
	int r;

	if (!line)
		return -ENOMEM;
	r = control__send_line(fd, line);
	free(line);
	return r;
}

/* Under cl->send_lock. A line cut short leaves the stream unframed: nothing more goes out. */
static int control__send_locked(struct control_client *cl, const char *line)
{
	int r;

	if (!line)
		return -ENOMEM;
	if (cl->fd < 0 || cl->broken)
		return -EPIPE;
	if ((r = control__send_line(cl->fd, line)) != 0)
		cl->broken = true;
	return r;
}

/* A reply (or the greeting) to a client; line freed. Nonzero: drop the client. */
static int control__client_send(struct control_client *cl, char *line)
{
	int r;

	pthread_mutex_lock(&cl->send_lock);
	r = control__send_locked(cl, line);
	pthread_mutex_unlock(&cl->send_lock);
	free(line);
	return r;
}

static json_t *control__query_status(struct kvm *kvm)
{
	enum kvm_run_state st;
	enum kvm_stop_reason why;
	char detail[256];

	pthread_mutex_lock(&kvm->lock);
	st = kvm->state;
	why = kvm->stop_reason;
	memcpy(detail, kvm->stop_detail, sizeof(detail));
	pthread_mutex_unlock(&kvm->lock);
	return json_pack("{s:s, s:b, s:b, s:s, s:s, s:s}",
			 "status", kvm__state_name(st),
			 "running", st == KVM_STATE_RUNNING,
			 "singlestep", 0,
			 "name", kvm->name,
			 "stop-reason", kvm__stop_reason_name(why),
			 "stop-detail", detail);
}

/*
 * query-dirty-rate: a subscriber of its own for window-ms, so the result is
 * the pages dirtied in that window whatever other consumers do. A worker
 * waits out the window (at most 10 s; less if the VM stops).
 */
static char *control__dirty_rate(struct control *c, const struct qmp_request *req)
{
	struct kvm *kvm = c->kvm;
	json_int_t window = 1000;
	struct bitmap seen;
	struct dirty_stats d;
	bool logging;
	int64_t n;
	int sub;
	json_t *ret;

	if (json_unpack(req->arguments, "{s?I !}", "window-ms", &window) != 0 ||
	    window < 10 || window > 10000)
		return qmp_reply_error("GenericError",
				       "arguments: {\"window-ms\": 10 to 10000} (optional)", req->id);
	if (kvm->dirty.mode == DIRTY_LOG_OFF)
		return qmp_reply_error("GenericError", "dirty logging is off (dirty-log mode)",
				       req->id);
	if (bitmap_init(&seen, kvm->dirty.nr_pages) != 0)
		return qmp_reply_error("GenericError", "out of memory", req->id);
	sub = dirty__subscribe(&kvm->dirty, "dirty-rate", false);
	if (sub < 0) {
		bitmap_free(&seen);
		return qmp_reply_error("GenericError", km_strerror(sub), req->id);
	}
	/* The window, or less if the VM stops meanwhile (then no answer is worth waiting). */
	if (kvm__wait_stopped(kvm, kvm__now_ns() + (uint64_t)window * 1000000ULL) == 0) {
		dirty__unsubscribe(&kvm->dirty, sub);
		bitmap_free(&seen);
		return qmp_reply_error("GenericError", "the VM stopped during the window", req->id);
	}
	n = dirty__read(&kvm->dirty, sub, &seen);
	dirty__unsubscribe(&kvm->dirty, sub);
	bitmap_free(&seen);
	if (n < 0)
		return qmp_reply_error("GenericError", km_strerror((int)n), req->id);
	dirty__get_stats(&kvm->dirty, &d, &logging);
	ret = json_pack("{s:s, s:I, s:I, s:f, s:f, s:I, s:I, s:f, s:f, s:I}",
			"backend", dirty__backend_name(kvm->dirty.backend),
			"window-ms", window,
			"dirty-pages", (json_int_t)n,
			"pages-per-second", (double)n * 1000.0 / (double)window,
			"dirty-rate-mbps", (double)n * 4096.0 * 8.0 / 1e6 * 1000.0 / (double)window,
			"working-set-pages", (json_int_t)n,
			"working-set-bytes", (json_int_t)(n * 4096),
			"harvest-ms-last", (double)d.harvest_ns_last / 1e6,
			"harvest-ms-avg", d.harvests ?
				(double)d.harvest_ns_total / 1e6 / (double)d.harvests : 0.0,
			"harvests", (json_int_t)d.harvests);
	return qmp_reply_return(ret, req->id);
}

static char *control__dirty_log(struct control *c, const struct qmp_request *req)
{
	const char *mode = NULL;
	enum dirty_log_mode m;
	int r;

	if (json_unpack(req->arguments, "{s:s !}", "mode", &mode) != 0)
		return qmp_reply_error("GenericError",
				       "arguments: {\"mode\": \"auto\" | \"on\" | \"off\"}", req->id);
	if (!strcmp(mode, "auto"))
		m = DIRTY_LOG_AUTO;
	else if (!strcmp(mode, "on"))
		m = DIRTY_LOG_ON;
	else if (!strcmp(mode, "off"))
		m = DIRTY_LOG_OFF;
	else
		return qmp_reply_error("GenericError", "mode must be auto, on or off", req->id);
	if ((r = dirty__set_mode(&c->kvm->dirty, m)) != 0)
		return qmp_reply_error("GenericError", km_strerror(r), req->id);
	return qmp_reply_return(stats__dirty(c->kvm), req->id);
}

/*
 * A hash of guest memory (memory__hash), taken with the vCPUs held so
 * that it is one instant's: what a restore or migration must reproduce.
 */
static char *control__memory_hash(struct control *c, const struct qmp_request *req)
{
	char hex[32];
	uint64_t h;
	int r;

	if ((r = kvm__hold(c->kvm, KVM_HOLD_INSPECT)) != 0)
		return qmp_reply_error("GenericError", km_strerror(r), req->id);
	r = memory__hash(&c->kvm->mem, &h);
	kvm__release(c->kvm, KVM_HOLD_INSPECT);
	if (r != 0)
		return qmp_reply_error("GenericError", km_strerror(r), req->id);
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);
	return qmp_reply_return(json_pack("{s:s}", "hash", hex), req->id);
}

/*
 * query-progress: the guest's progress reports as the VMM received them
 * (progress.h), oldest first, from since-ns (CLOCK_MONOTONIC of this host,
 * as the reply's next-since-ns gives it back: a client pages through them).
 */
static char *control__query_progress(struct control *c, const struct qmp_request *req)
{
	struct kvm *kvm = c->kvm;
	json_int_t since = 0, max = 1024;
	struct progress_sample *v;
	uint64_t next;
	json_t *a;
	size_t n, i;

	if (json_unpack(req->arguments, "{s?I, s?I !}", "since-ns", &since, "max", &max) != 0 ||
	    since < 0 || max < 1 || max > 4096)
		return qmp_reply_error("GenericError", "arguments: {\"since-ns\": from the last "
				       "reply's next-since-ns, \"max\": 1 to 4096} (both optional)",
				       req->id);
	if (!(v = calloc((size_t)max, sizeof(*v))))
		return qmp_reply_error("GenericError", "out of memory", req->id);
	n = progress__samples(&kvm->progress, (uint64_t)since, v, (size_t)max);
	next = n ? v[n - 1].host_ns + 1 : (uint64_t)since;
	a = json_array();
	for (i = 0; a && i < n; i++)
		json_array_append_new(a, json_pack("{s:I, s:f, s:i, s:I}", "host-ns",
			(json_int_t)v[i].host_ns, "ms", kvm->start_ns && v[i].host_ns > kvm->start_ns ?
			(double)(v[i].host_ns - kvm->start_ns) / 1e6 : 0.0, "vcpu", (int)v[i].vcpu,
			"counter", (json_int_t)v[i].counter));
	free(v);
	return qmp_reply_return(json_pack("{s:o, s:I, s:I}", "samples", a, "next-since-ns",
					  (json_int_t)next, "now-ns", (json_int_t)kvm__now_ns()),
				req->id);
}

/* calc-dirty-rate: starts a measurement (dirtyrate.h); query-dirty-rate reads it. */
static char *control__calc_dirty_rate(struct control *c, const struct qmp_request *req)
{
	struct dirtyrate_params p = { .mode = DIRTYRATE_BITMAP, .duration_ms = 1000,
				      .sample_pages = DIRTYRATE_SAMPLE_DEFAULT };
	json_int_t duration = 1000, interval = -1, sample = DIRTYRATE_SAMPLE_DEFAULT;
	const char *mode = "bitmap";
	char err[200];
	int wws = 0;

	if (json_unpack(req->arguments, "{s?s, s?I, s?I, s?I, s?b !}", "mode", &mode,
			"duration-ms", &duration, "interval-ms", &interval, "sample-pages", &sample,
			"wws", &wws) != 0 ||
	    duration < 100 || duration > 3600000 || (interval != -1 &&
	    (interval < 10 || interval > duration)) || sample < 64 || sample > 1048576 ||
	    (strcmp(mode, "bitmap") && strcmp(mode, "sample") && strcmp(mode, "ring")))
		return qmp_reply_error("GenericError", "arguments: {\"mode\": \"bitmap\", \"ring\" or "
				       "\"sample\", \"duration-ms\": 100 to 3600000, \"interval-ms\": "
				       "10 to duration-ms (default: duration-ms), \"sample-pages\": 64 to "
				       "1048576, \"wws\": bool} (all optional)", req->id);
	p.mode = !strcmp(mode, "sample") ? DIRTYRATE_SAMPLE : !strcmp(mode, "ring") ?
		 DIRTYRATE_RING : DIRTYRATE_BITMAP;
	p.duration_ms = (uint64_t)duration;
	p.interval_ms = interval == -1 ? p.duration_ms : (uint64_t)interval;
	p.sample_pages = (uint32_t)sample;
	p.wws = wws;
	if (dirtyrate__start(c->kvm, &p, err, sizeof(err)) != 0)
		return qmp_reply_error("GenericError", err, req->id);
	return qmp_reply_return(NULL, req->id);
}

/*
 * set-vcpu-dirty-limit, cancel-vcpu-dirty-limit, query-vcpu-dirty-limit
 * (QEMU's names and arguments; dirtylimit.h): the user's limits.
 */
static char *control__dirty_limit(struct control *c, const struct qmp_request *req)
{
	struct dirtylimit_info v[KM_MAX_VCPUS];
	struct kvm *kvm = c->kvm;
	json_int_t cpu = -1;
	double rate = -1;
	unsigned int n, i;
	char err[200];
	json_t *a;
	int r;

	if (kvm->dirty.backend != DIRTY_RING)
		return qmp_reply_error("GenericError", "the dirty limit needs the dirty-ring "
				       "backend (kvm-run --dirty-log ring)", req->id);
	if (!strcmp(req->execute, "set-vcpu-dirty-limit")) {
		if (json_unpack(req->arguments, "{s:F, s?I !}", "dirty-rate", &rate,
				"cpu-index", &cpu) != 0 || cpu < -1 || rate < 0)
			return qmp_reply_error("GenericError", "arguments: {\"dirty-rate\": MB/s, "
					       "\"cpu-index\": a vCPU (optional: all)}", req->id);
		if (dirtylimit__set(kvm, DIRTYLIMIT_USER, (int)cpu, rate, err,
				    sizeof(err)) != 0)
			return qmp_reply_error("GenericError", err, req->id);
		return qmp_reply_return(NULL, req->id);
	}
	if (!strcmp(req->execute, "cancel-vcpu-dirty-limit")) {
		if (json_unpack(req->arguments, "{s?I !}", "cpu-index", &cpu) != 0 || cpu < -1)
			return qmp_reply_error("GenericError", "arguments: {\"cpu-index\": a vCPU "
					       "(optional: all)}", req->id);
		if ((r = dirtylimit__cancel(kvm, DIRTYLIMIT_USER, (int)cpu)) != 0) {
			snprintf(err, sizeof(err), "cpu-index %lld: this VM has vCPUs 0 to %u",
				 (long long)cpu, kvm->nr_cpus - 1);
			return qmp_reply_error("GenericError", err, req->id);
		}
		return qmp_reply_return(NULL, req->id);
	}
	if (req->arguments && json_object_size(req->arguments))
		return qmp_reply_error("GenericError", "query-vcpu-dirty-limit takes no arguments",
				       req->id);
	n = dirtylimit__query(kvm, v, KM_MAX_VCPUS);
	a = json_array();
	for (i = 0; a && i < n; i++)
		json_array_append_new(a, json_pack("{s:i, s:f, s:f, s:f, s:f, s:f, s:f}",
			"cpu-index", (int)v[i].cpu, "limit-rate", v[i].limit_mbps,
			"user-limit-rate", v[i].owner_mbps[DIRTYLIMIT_USER],
			"migration-limit-rate", v[i].owner_mbps[DIRTYLIMIT_MIGRATION],
			"current-rate", v[i].current_mbps, "run-share", v[i].run_share,
			"throttled-ms", (double)v[i].slept_ns / 1e6));
	return qmp_reply_return(a, req->id);
}

/* Runs one request; returns the reply line (malloc'd). *quit set by "quit". */
static char *control__dispatch(struct control *c, const struct qmp_request *req,
			       int *quit)
{
	struct kvm *kvm = c->kvm;
	const char *cmd = req->execute;
	uint64_t pages, bad;
	int r;

	if (!strcmp(cmd, "query-status"))
		return qmp_reply_return(control__query_status(kvm), req->id);
	if (!strcmp(cmd, "query-stats"))
		return qmp_reply_return(stats__query(kvm), req->id);
	if (!strcmp(cmd, "stop")) {
		if ((r = kvm__pause(kvm)) != 0)
			return qmp_reply_error("GenericError", "the VM is not running", req->id);
		return qmp_reply_return(NULL, req->id);
	}
	if (!strcmp(cmd, "cont")) {
		if (kvm__holds(kvm) & KVM_HOLD_MIGRATION)
			return qmp_reply_error("GenericError",
					       "a migration is switching this VM over (or waiting to "
					       "learn whether the destination runs it); it stays "
					       "paused until that ends", req->id);
		if ((r = kvm__resume(kvm)) != 0)
			return qmp_reply_error("GenericError", "the VM has stopped", req->id);
		return qmp_reply_return(NULL, req->id);
	}
	if (!strcmp(cmd, "check")) {
		r = kvm__guest_check(kvm, CHECK_TIMEOUT_MS, &pages, &bad);
		if (r == KM_ERR_STATE)
			return qmp_reply_error("GenericError",
					       "the VM is not running (paused or stopped), or a check is in progress",
					       req->id);
		if (r == KM_ERR_TIMEOUT)
			return qmp_reply_error("GenericError",
					       "the guest did not answer the check in time (is it the verify workload?)",
					       req->id);
		return qmp_reply_return(json_pack("{s:I, s:I}", "pages", (json_int_t)pages,
						  "bad", (json_int_t)bad), req->id);
	}
	if (!strcmp(cmd, "query-progress"))
		return control__query_progress(c, req);
	if (!strcmp(cmd, "calc-dirty-rate"))
		return control__calc_dirty_rate(c, req);
	if (!strcmp(cmd, "cancel-dirty-rate"))
		return qmp_reply_return(json_pack("{s:b}", "cancelled", dirtyrate__cancel(kvm)),
					req->id);
	if (!strcmp(cmd, "query-dirty-rate")) {
		json_t *m;

		/* Without a window: the measurement calc-dirty-rate started, if there is one. */
		if ((!req->arguments || !json_object_size(req->arguments)) &&
		    (m = dirtyrate__query(kvm)))
			return qmp_reply_return(m, req->id);
		return control__dirty_rate(c, req);
	}
	if (!strcmp(cmd, "query-memory-hash"))
		return control__memory_hash(c, req);
	if (!strcmp(cmd, "set-vcpu-dirty-limit") || !strcmp(cmd, "cancel-vcpu-dirty-limit") ||
	    !strcmp(cmd, "query-vcpu-dirty-limit"))
		return control__dirty_limit(c, req);
	if (!strcmp(cmd, "dirty-log"))
		return control__dirty_log(c, req);
	if (!strcmp(cmd, "quit")) {
		*quit = 1;
		return qmp_reply_return(NULL, req->id);
	}
	for (const struct control_cmd *x = c->extra; x && x->name; x++)
		if (!strcmp(cmd, x->name))
			return x->fn(x->ctx, req);
	{
		char desc[128];

		snprintf(desc, sizeof(desc), "The command %s has not been found", cmd);
		return qmp_reply_error("CommandNotFound", desc, req->id);
	}
}

/*
 * qmp_capabilities, optionally {"enable": ["events"]} (as QEMU's takes
 * "oob"). Events follow the reply, never precede it: the flag is set in
 * the same hold of send_lock as the reply is sent. Plain
 * qmp_capabilities does nothing, as it always did; enabling is for good.
 */
static int control__capabilities(struct control_client *cl, const struct qmp_request *req)
{
	json_t *enable = NULL, *v;
	bool events = false;
	char desc[160];
	size_t i;
	int r;

	if (json_unpack(req->arguments, "{s?o !}", "enable", &enable) != 0 ||
	    (enable && !json_is_array(enable)))
		return control__client_send(cl, qmp_reply_error("GenericError",
			"arguments: {\"enable\": [capability, ...]} (optional); offered: \"events\"",
			req->id));
	json_array_foreach(enable, i, v) {
		if (!json_is_string(v) || strcmp(json_string_value(v), "events")) {
			snprintf(desc, sizeof(desc), "capability %s%.40s%s is not available "
				 "(offered: \"events\")", json_is_string(v) ? "\"" : "",
				 json_is_string(v) ? json_string_value(v) : "(not a string)",
				 json_is_string(v) ? "\"" : "");
			return control__client_send(cl, qmp_reply_error("GenericError", desc,
									req->id));
		}
		events = true;
	}
	{
		char *line = qmp_reply_return(NULL, req->id);

		pthread_mutex_lock(&cl->send_lock);
		r = control__send_locked(cl, line);
		if (r == 0 && events)
			cl->events = true;
		pthread_mutex_unlock(&cl->send_lock);
		free(line);
	}
	return r;
}

static void control__drop(struct control_client *cl)
{
	pthread_mutex_lock(&cl->send_lock);
	close(cl->fd);
	cl->fd = -1;
	cl->events = false;
	cl->broken = false;
	pthread_mutex_unlock(&cl->send_lock);
	qmp_linebuf_free(cl->lb);
	cl->lb = NULL;
}

/* The commands that take seconds: answered by a worker thread. */
static bool control__is_long(const struct control *c, const char *cmd)
{
	if (!strcmp(cmd, "check") || !strcmp(cmd, "query-dirty-rate") ||
	    !strcmp(cmd, "query-memory-hash"))
		return true;
	for (const struct control_cmd *x = c->extra; x && x->name; x++)
		if (!strcmp(cmd, x->name))
			return x->slow;
	return false;
}

static void *control__worker(void *arg)
{
	struct control_client *cl = arg;
	uint64_t one = 1;
	int quit = 0;

	pthread_setname_np(pthread_self(), "control-long");
	if (control__client_send(cl, control__dispatch(cl->c, &cl->req, &quit)) != 0)
		cl->gone = true;
	qmp_request_free(&cl->req);
	atomic_store(&cl->done, true);
	(void)!write(cl->c->done_fd, &one, sizeof(one));
	return NULL;
}

/* Answers the complete request lines a client has sent; -1 when it must be dropped. */
static int control__serve_lines(struct control *c, struct control_client *cl)
{
	struct qmp_request req;
	char err[256];
	const char *line;
	size_t len;
	int r, quit = 0;

	while (!cl->busy) {
		r = qmp_linebuf_next(cl->lb, &line, &len);
		if (r == KM_ERR_TRUNCATED)
			return 0;
		if (r == KM_ERR_TOO_LARGE) {
			if (control__client_send(cl, qmp_reply_error("GenericError",
						 "request line too long", NULL)))
				return -1;
			continue;
		}
		if (r != 0)
			return -1;
		if (len == 0)
			continue;
		memset(&req, 0, sizeof(req));
		if (qmp_parse_request(line, len, &req, err, sizeof(err)) != 0) {
			r = control__client_send(cl, qmp_reply_error("GenericError", err, NULL));
		} else if (!strcmp(req.execute, "qmp_capabilities")) {
			r = control__capabilities(cl, &req);
			qmp_request_free(&req);
		} else if (control__is_long(c, req.execute)) {
			cl->req = req;
			cl->c = c;
			atomic_store(&cl->done, false);
			cl->gone = false;
			if (pthread_create(&cl->worker, NULL, control__worker, cl) == 0) {
				cl->busy = true;
				return 0;
			}
			r = control__client_send(cl, qmp_reply_error("GenericError",
						 "no thread for the command", req.id));
			qmp_request_free(&cl->req);
		} else {
			r = control__client_send(cl, control__dispatch(c, &req, &quit));
			qmp_request_free(&req);
		}
		if (quit)
			kvm__request_stop(c->kvm, KVM_STOP_QUIT, "quit requested on the control socket");
		if (r)
			return -1;
	}
	return 0;
}

/* Reads what a client sent and answers it; -1 when the client must be dropped. */
static int control__serve(struct control *c, struct control_client *cl)
{
	int r = qmp_linebuf_fill(cl->lb, cl->fd);

	if (r == -EAGAIN || r == -EINTR)
		return 0;
	if (r != 0)
		return -1;
	return control__serve_lines(c, cl);
}

/* Workers that answered: joined; their clients' next requests are served. */
static void control__reap_workers(struct control *c)
{
	uint64_t v;
	unsigned int i;

	(void)!read(c->done_fd, &v, sizeof(v));
	for (i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct control_client *cl = &c->clients[i];

		if (!cl->busy || !atomic_load(&cl->done))
			continue;
		pthread_join(cl->worker, NULL);
		cl->busy = false;
		if (cl->gone || control__serve_lines(c, cl) < 0)
			control__drop(cl);
	}
}

static void control__accept(struct control *c)
{
	json_t *greeting;
	unsigned int i;
	int fd;

	unsigned int uid;

	fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	/* This VM's user and root only: the socket can copy out all guest memory. */
	if (chan_unix_peer_check(fd, &uid) != 0) {
		log_warn("%s: refused a connection from uid %u", c->path, uid);
		close(fd);
		return;
	}
	for (i = 0; i < CONTROL_MAX_CLIENTS; i++)
		if (c->clients[i].fd < 0)
			break;
	if (i == CONTROL_MAX_CLIENTS) {
		control__send(fd, qmp_reply_error("GenericError", "too many clients", NULL));
		close(fd);
		return;
	}
	c->clients[i].lb = qmp_linebuf_new();
	if (!c->clients[i].lb) {
		close(fd);
		return;
	}
	pthread_mutex_lock(&c->clients[i].send_lock);
	c->clients[i].fd = fd;
	pthread_mutex_unlock(&c->clients[i].send_lock);
	/*
	 * The QMP greeting, so that QMP habits and tools carry over. Events
	 * are offered, and sent only to a client that enables them: the
	 * request/reply clients (kvm-migrate, socat) see what they always did.
	 */
	greeting = json_pack("{s:{s:{s:s}, s:[s]}}", "QMP", "version", "package",
			     PACKAGE_STRING, "capabilities", "events");
	{
		char *s = json_dumps(greeting, JSON_COMPACT);
		char *line = NULL;

		if (s && asprintf(&line, "%s\n", s) < 0)
			line = NULL;
		free(s);
		if (control__client_send(&c->clients[i], line))
			control__drop(&c->clients[i]);
	}
	json_decref(greeting);
}

static void *control__thread(void *arg)
{
	struct control *c = arg;
	struct pollfd pfd[CONTROL_MAX_CLIENTS + 3];
	int map[CONTROL_MAX_CLIENTS + 3];
	unsigned int i, n;

	pthread_setname_np(pthread_self(), "control");
	for (;;) {
		n = 0;
		pfd[n].fd = c->wake_fd;
		pfd[n++].events = POLLIN;
		pfd[n].fd = c->listen_fd;
		pfd[n++].events = POLLIN;
		pfd[n].fd = c->done_fd;
		pfd[n++].events = POLLIN;
		for (i = 0; i < CONTROL_MAX_CLIENTS; i++) {
			/* A client whose worker runs is left alone until it answers. */
			if (c->clients[i].fd < 0 || c->clients[i].busy)
				continue;
			map[n] = (int)i;
			pfd[n].fd = c->clients[i].fd;
			pfd[n++].events = POLLIN;
		}
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("control socket poll: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents)
			break;
		if (pfd[1].revents & POLLIN)
			control__accept(c);
		if (pfd[2].revents & POLLIN)
			control__reap_workers(c);
		for (i = 3; i < n; i++) {
			struct control_client *cl = &c->clients[map[i]];

			if (!pfd[i].revents || cl->fd < 0)
				continue;
			if (control__serve(c, cl) < 0)
				control__drop(cl);
		}
	}
	return NULL;
}

/* A socket file nobody listens on is left over from a VM that died: replace it. */
static int control__bind(struct control *c)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	memcpy(sun.sun_path, c->path, strlen(c->path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return km_errno();
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(fd);
		log_error("%s: another VM is already listening there", c->path);
		return -EADDRINUSE;
	}
	close(fd);
	unlink(c->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return km_errno();
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || chmod(c->path, 0600) < 0 ||
	    listen(fd, 8) < 0 || stat(c->path, &st) < 0) {
		r = km_errno();
		log_error("%s: %s", c->path, km_strerror(r));
		close(fd);
		return r;
	}
	c->listen_fd = fd;
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	c->published = true;
	return 0;
}

int control__start(struct kvm *kvm, const char *path, struct control **out)
{
	return control__start_ext(kvm, path, NULL, out);
}

const struct control_cmd *control__join(const struct control_cmd *a,
					const struct control_cmd *b)
{
	static struct control_cmd all[32];
	const struct control_cmd *parts[] = { a, b };
	unsigned int i, n = 0;

	for (i = 0; i < 2; i++)
		for (const struct control_cmd *x = parts[i]; x && x->name && n + 1 < 32; x++)
			all[n++] = *x;
	all[n] = (struct control_cmd){ 0 };
	return all;
}

int control__start_ext(struct kvm *kvm, const char *path, const struct control_cmd *extra,
		       struct control **out)
{
	struct control *c;
	unsigned int i;
	int r;

	if (strlen(path) >= sizeof(c->path))
		return KM_ERR_TOO_LARGE;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->kvm = kvm;
	c->extra = extra;
	c->listen_fd = -1;
	for (i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		c->clients[i].fd = -1;
		pthread_mutex_init(&c->clients[i].send_lock, NULL);
	}
	memcpy(c->path, path, strlen(path) + 1);
	c->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (c->wake_fd < 0) {
		r = km_errno();
		goto out_free;
	}
	c->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->done_fd < 0) {
		r = km_errno();
		goto out_wake;
	}
	if ((r = control__bind(c)) != 0)
		goto out_done;
	if ((r = pthread_create(&c->thread, NULL, control__thread, c)) != 0) {
		r = -r;
		goto out_listen;
	}
	pthread_mutex_lock(&control__events_lock);
	kvm->control = c;
	pthread_mutex_unlock(&control__events_lock);
	*out = c;
	return 0;

out_listen:
	close(c->listen_fd);
	unlink(c->path);
out_done:
	close(c->done_fd);
out_wake:
	close(c->wake_fd);
out_free:
	for (i = 0; i < CONTROL_MAX_CLIENTS; i++)
		pthread_mutex_destroy(&c->clients[i].send_lock);
	free(c);
	return r;
}

void control__unpublish(struct control *c)
{
	struct stat st;

	if (!c || !c->published)
		return;
	/* A VM of the same name may have taken the path since: leave its socket alone. */
	if (stat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
		unlink(c->path);
	c->published = false;
}

void control__stop(struct control *c)
{
	uint64_t one = 1;
	unsigned int i;

	if (!c)
		return;
	/* No emitter follows kvm->control to c from here on (control__events_lock). */
	pthread_mutex_lock(&control__events_lock);
	if (c->kvm->control == c)
		c->kvm->control = NULL;
	pthread_mutex_unlock(&control__events_lock);
	if (write(c->wake_fd, &one, sizeof(one)) != sizeof(one))
		log_warn("control socket: cannot wake the thread");
	pthread_join(c->thread, NULL);
	for (i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		/* A worker ends with the VM (check and the dirty-rate window end there). */
		if (c->clients[i].busy) {
			pthread_join(c->clients[i].worker, NULL);
			c->clients[i].busy = false;
		}
		if (c->clients[i].fd >= 0)
			control__drop(&c->clients[i]);
		pthread_mutex_destroy(&c->clients[i].send_lock);
	}
	close(c->listen_fd);
	control__unpublish(c);
	close(c->done_fd);
	close(c->wake_fd);
	free(c);
}

/*
 * To one client that asked for events. A line that does not fit in its
 * socket buffer breaks the client rather than wait: shutdown() wakes the
 * control thread's poll (it reads the end and drops the client), or makes
 * the reply of a worker under way fail (and the client is dropped when
 * that worker is reaped). Only the control thread closes the descriptor.
 */
static void control__event_to(struct control_client *cl, const char *line)
{
	int r;

	pthread_mutex_lock(&cl->send_lock);
	if (cl->fd >= 0 && cl->events && !cl->broken &&
	    (r = control__send_locked(cl, line)) != 0) {
		if (r == -EAGAIN)
			log_warn("control socket: a client that does not read its events is dropped");
		shutdown(cl->fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&cl->send_lock);
}

void control__event(struct kvm *kvm, const char *name, json_t *data)
{
	struct control *c;
	unsigned int i;
	char *line;

	if (!kvm) {
		json_decref(data);
		return;
	}
	/* Made once for every client, before the lock, which thus stays short. */
	if (!(line = qmp_event(name, data))) {
		log_warn("control socket: no memory for the event %s", name);
		return;
	}
	pthread_mutex_lock(&control__events_lock);
	c = kvm->control;
	for (i = 0; c && i < CONTROL_MAX_CLIENTS; i++)
		control__event_to(&c->clients[i], line);
	pthread_mutex_unlock(&control__events_lock);
	free(line);
}
