/*
 * The migration protocol's small pieces, in one place (docs/protocol.md):
 * the fields of the handshake records, REC_ERROR both ways, and the fault
 * points of test builds. The sending side (send.c, mig.c), the receiving
 * side (recv.c) and the daemon (kvm-migrated.c) all speak through these.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "record.h"
#include "rundir.h"
#include "stream.h"
#include "migrate/migrate.h"

int migrate__name_field(const uint8_t *p, uint32_t len, uint32_t tag, char *name, size_t max)
{
	const uint8_t *d;
	uint32_t flen;

	name[0] = 0;
	if (rec_find_field(p, len, tag, &d, &flen) != 0 || flen == 0 || flen >= max)
		return KM_ERR_CORRUPT;
	memcpy(name, d, flen);
	name[flen] = 0;
	return rundir_valid_name(name) ? 0 : KM_ERR_CORRUPT;
}

void migrate__error_text(const uint8_t *p, uint32_t len, char *out, size_t outlen)
{
	const uint8_t *d;
	uint32_t flen, i;
	size_t n = 0;

	snprintf(out, outlen, "(no reason given)");
	if (rec_find_field(p, len, 2, &d, &flen) != 0)	/* field 2: the text */
		return;
	for (i = 0; i < flen && n + 1 < outlen; i++)
		out[n++] = d[i] >= 0x20 && d[i] < 0x7f ? (char)d[i] : '?';
	out[n] = 0;
}

void migrate__send_error(struct stream *s, int code, const char *text)
{
	struct buf *e = buf_new(512);

	if (e && !rec_put_field_u64(e, 1, (uint64_t)(code < 0 ? -code : code)) &&
	    !rec_put_field(e, 2, text, (uint32_t)strnlen(text, 400)) &&
	    !stream_put(s, REC_ERROR, buf_ptr(e), (uint32_t)buf_len(e)))
		stream_flush(s);
	buf_free(e);
}

int migrate__put_u64(struct stream *s, uint32_t type, uint64_t v)
{
	struct buf *p = buf_new(64);
	int r;

	if (!p)
		return -ENOMEM;
	if ((r = rec_put_field_u64(p, 1, v)) == 0)
		r = stream_put(s, type, buf_ptr(p), (uint32_t)buf_len(p));
	buf_free(p);
	return r;
}

int migrate__send_u64(struct stream *s, uint32_t type, uint64_t v)
{
	int r = migrate__put_u64(s, type, v);

	return r ? r : stream_flush(s);
}

int migrate__put_progress_entry(struct buf *b, const struct migrate_progress *e)
{
	int r;

	if ((r = buf_put_u64(b, e->wall_ns)) == 0 && (r = buf_put_u64(b, e->counter)) == 0 &&
	    (r = buf_put_u32(b, e->vcpu)) == 0)
		r = buf_put_u32(b, 0);
	return r;
}

static uint64_t proto__le(const uint8_t *p, unsigned int bytes)
{
	uint64_t v = 0;

	while (bytes--)
		v = v << 8 | p[bytes];
	return v;
}

void migrate__progress_entry(const uint8_t *field, size_t i, struct migrate_progress *e)
{
	const uint8_t *p = field + i * MIGRATE_PROGRESS_ENTRY;

	e->wall_ns = proto__le(p, 8);
	e->counter = proto__le(p + 8, 8);
	e->vcpu = (uint32_t)proto__le(p + 16, 4);
}

#ifdef KM_FAULT_INJECTION
bool migrate__fault(const char *name)
{
	const char *fault = getenv("KVM_MIGRATE_FAULT");

	return fault && !strcmp(fault, name);
}
#endif
