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
	o = json_pack("{s:I, s:s, s:f, s:I, s:I}", "id", (json_int_t)res.id,
		      "kind", res.full ? "base" : "increment", "pause-ms", res.pause_ns / 1e6,
		      "pages", (json_int_t)res.pages, "bytes", (json_int_t)res.bytes);
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

static char *cmd_checkpoint_set(void *ctx, const struct qmp_request *req)
{
	json_int_t every = -1;

	if (json_unpack(req->arguments, "{s:I !}", "every-ms", &every) != 0 || every < 0 ||
	    (every > 0 && every < 10) || every > 86400000)
		return qmp_reply_error("GenericError", "arguments: {\"every-ms\": 0 (stop periodic "
				       "checkpoints) or 10..86400000}", req->id);
	if (checkpoint__set_period(ctx, (uint64_t)every) != 0)
		return qmp_reply_error("GenericError", "this VM has no checkpoint directory "
				       "(kvm-run --checkpoint-dir)", req->id);
	return qmp_reply_return(NULL, req->id);
}

/* ctx is filled in by checkpoint__control_table. */
static struct control_cmd table[] = {
	{ "checkpoint", cmd_checkpoint, NULL, true },
	{ "query-checkpoints", cmd_query_checkpoints, NULL, false },
	{ "checkpoint-set", cmd_checkpoint_set, NULL, false },
	{ NULL, NULL, NULL, false },
};

const struct control_cmd *checkpoint__control_table(struct kvm *kvm)
{
	unsigned int i;

	for (i = 0; table[i].name; i++)
		table[i].ctx = kvm;
	return table;
}
