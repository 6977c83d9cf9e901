/*
 * The checkpoints' control commands (docs/control.md): checkpoint,
 * query-checkpoints, checkpoint-set. Served by the VM's control thread
 * through kvm/control.h's extension table; checkpoint waits for the
 * outcome, so it runs on a worker thread.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "qmp.h"
#include "kvm/control.h"
#include "kvm/kvm.h"
#include "kvm/virtio-blk.h"
#include "snapshot/checkpoint.h"

static char *cmd_checkpoint(void *ctx, const struct qmp_request *req)
{
	struct checkpoint_result res;
	int full = 0, hash = 0, r;
	char err[256] = "", hex[32];
	json_t *o;

	if (json_unpack(req->arguments, "{s?b, s?b !}", "full", &full, "hash", &hash) != 0)
		return qmp_reply_error("GenericError", "arguments: {\"full\": bool, \"hash\": bool} "
				       "(both optional)", req->id);
	if ((r = checkpoint__now(ctx, full, hash, &res, err, sizeof(err))) != 0)
		return qmp_reply_error("GenericError", err[0] ? err : km_strerror(r), req->id);
	o = json_pack("{s:I, s:s, s:f, s:I, s:I, s:I, s:i, s:i}", "id", (json_int_t)res.id,
		      "kind", res.full ? "base" : "increment", "pause-ms", res.pause_ns / 1e6,
		      "pages", (json_int_t)res.pages, "bytes", (json_int_t)res.bytes,
		      "pause-pages", (json_int_t)res.pause_pages, "rounds", (int)res.rounds,
		      "throttle-percentage", (int)res.throttle_pct);
	checkpoint__disk_json(ctx, o, &res);
	if (o && res.has_hash) {
		snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)res.mem_hash);
		json_object_set_new(o, "memory-hash", json_string(hex));
	}
	return qmp_reply_return(o, req->id);
}

static char *cmd_query_checkpoints(void *ctx, const struct qmp_request *req)
{
	struct checkpoint_stats st;

	if (checkpoint__get_stats(ctx, &st) != 0)
		return qmp_reply_error("GenericError", "this VM has no checkpoint directory "
				       "(kvm-run --checkpoint-dir)", req->id);
	return qmp_reply_return(json_pack("{s:I, s:I, s:I, s:f, s:f, s:I, s:I, s:f, s:I, s:b, s:I,"
					  " s:s}",
					  "taken", (json_int_t)st.taken,
					  "failed", (json_int_t)st.failed,
					  "last-id", (json_int_t)st.last_id,
					  "last-pause-ms", st.last_pause_ns / 1e6,
					  "max-pause-ms", st.max_pause_ns / 1e6,
					  "last-pages", (json_int_t)st.last_pages,
					  "last-bytes", (json_int_t)st.last_bytes,
					  "last-time-ms", st.last_ns / 1e6,
					  "owed-pages", (json_int_t)st.owed_pages,
					  "periodic", st.periodic,
					  "every-ms", (json_int_t)st.every_ms,
					  "last-error", st.last_error), req->id);
}

/*
 * Changes the period; with "dir", first starts checkpoints of a VM that
 * has none (one that arrived by migration, or was started without
 * --checkpoint-dir).
 */
static char *cmd_checkpoint_set(void *ctx, const struct qmp_request *req)
{
	struct checkpoint_params p = { .compress = true };
	struct checkpoint_stats st;
	json_int_t every = -1, keep = 0;
	const char *dir = NULL;
	char err[512];
	int r;

	if (json_unpack(req->arguments, "{s?I, s?s, s?I !}", "every-ms", &every, "dir", &dir,
			"keep", &keep) != 0 || (every > 0 && every < 10) || every > 86400000 ||
	    (every < 0 && !dir) || keep < 0 || keep > 100000 ||
	    (dir && (!*dir || strlen(dir) >= sizeof(p.dir))))
		return qmp_reply_error("GenericError", "arguments: {\"every-ms\": 0 (stop periodic "
				       "checkpoints) or 10..86400000, \"dir\": where to start keeping "
				       "checkpoints (a VM without), \"keep\": 1..100000}", req->id);
	if (dir) {
		if (checkpoint__get_stats(ctx, &st) == 0)
			return qmp_reply_error("GenericError", "this VM keeps checkpoints already "
					       "(only every-ms can change)", req->id);
		snprintf(p.dir, sizeof(p.dir), "%s", dir);
		p.every_ms = every > 0 ? (uint64_t)every : 0;
		p.keep = (unsigned int)keep;
		if ((r = checkpoint__setup(ctx, &p, err, sizeof(err))) != 0)
			return qmp_reply_error("GenericError", err, req->id);
		return qmp_reply_return(NULL, req->id);
	}
	if (checkpoint__set_period(ctx, (uint64_t)every) != 0)
		return qmp_reply_error("GenericError", "this VM has no checkpoint directory "
				       "(kvm-run --checkpoint-dir, or checkpoint-set with dir)", req->id);
	return qmp_reply_return(NULL, req->id);
}

/* A live snapshot into a directory of its own (kvm-migrate VM file:DIR). */
static char *cmd_checkpoint_save(void *ctx, const struct qmp_request *req)
{
	struct checkpoint_result res;
	const char *dir = NULL;
	int compress = 1, r;
	char err[512] = "";
	json_t *o;

	if (json_unpack(req->arguments, "{s:s, s?b !}", "dir", &dir, "compress", &compress) != 0 ||
	    !*dir || strlen(dir) >= 4096)
		return qmp_reply_error("GenericError", "arguments: {\"dir\": where to save, "
				       "\"compress\": bool}", req->id);
	if ((r = checkpoint__save_to(ctx, dir, compress, &res, err, sizeof(err))) != 0)
		return qmp_reply_error("GenericError", err[0] ? err : km_strerror(r), req->id);
	o = json_pack("{s:s, s:I, s:f, s:I, s:I, s:f}", "dir", dir, "id", (json_int_t)res.id,
		      "pause-ms", res.pause_ns / 1e6, "pages", (json_int_t)res.pages,
		      "bytes", (json_int_t)res.bytes, "total-ms", res.ns / 1e6);
	checkpoint__disk_json(ctx, o, &res);
	return qmp_reply_return(o, req->id);
}

/* ctx is filled in by checkpoint__control_table. */
static struct control_cmd table[] = {
	{ "checkpoint", cmd_checkpoint, NULL, true },
	{ "query-checkpoints", cmd_query_checkpoints, NULL, false },
	{ "checkpoint-set", cmd_checkpoint_set, NULL, false },
	{ "checkpoint-save", cmd_checkpoint_save, NULL, true },
	{ NULL, NULL, NULL, false },
};

const struct control_cmd *checkpoint__control_table(struct kvm *kvm)
{
	unsigned int i;

	for (i = 0; table[i].name; i++)
		table[i].ctx = kvm;
	return table;
}
