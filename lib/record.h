/*
 * The record codec: one format for migration streams and snapshot files
 * (DESIGN.md s.7, specified in docs/format.md).
 *
 * A record is a 16-byte header and a payload:
 *   u32 type, u32 payload length, u64 XXH3-64 of (type, length, payload)
 * all little-endian. The payload of the structured records is a sequence of
 * fields: u32 tag, u32 length, bytes. A reader bounds every length before
 * using it: a record longer than REC_MAX_PAYLOAD is refused before anything
 * is allocated, and a field may not run past the end of its record.
 */
#ifndef KM_RECORD_H
#define KM_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define REC_HDR_SIZE		16
#define REC_MAX_PAYLOAD		(16U << 20)
#define REC_MAGIC		"KVMMIGR1"	/* first 8 bytes of a REC_HEADER payload */
#define REC_VERSION		1

enum rec_type {
	REC_HEADER = 1,		/* magic, version, capabilities */
	REC_VM_CONFIG = 2,	/* memory layout, vCPU count */
	REC_PAGES = 3,		/* a batch of guest pages (issue 4) */
	REC_ROUND_END = 4,	/* end of a pre-copy round */
	REC_VCPU_STATE = 5,	/* one vCPU's complete state */
	REC_VM_STATE = 6,	/* VM-wide state: clock, irqchip, PIT */
	REC_END = 7,		/* the stream or file is complete */
	/* Migration handshake (docs/protocol.md), destination -> source unless noted: */
	REC_ACCEPT = 8,		/* the VM config is acceptable: send pages */
	REC_READY = 9,		/* everything loaded and verified: say go */
	REC_GO = 10,		/* source -> destination: resume the VM */
	REC_RUNNING = 11,	/* the VM runs on the destination */
	REC_ERROR = 12,		/* either way: fields ERR_CODE, ERR_TEXT; the peer gives up */
	REC_QUERY = 13,		/* client -> daemon: fields Q_NAME */
	REC_QUERY_REPLY = 14,	/* daemon -> client: fields Q_NAME, Q_STATE */
	REC_GUEST_REPORT = 15,	/* after RUNNING: what the guest measured (field 1: stall ns) */
	REC_ROUND_ACK = 16,	/* destination -> source: every page of that round is applied */
	REC_CHECKPOINT = 17,	/* a checkpoint file's identity: CK_* fields (docs/format.md) */
	REC_PAGE_INDEX = 18,	/* where a checkpoint file's page entries are (docs/format.md s.9.1) */
	REC_DTRACE_INFO = 19,	/* a dirty trace's geometry (lib/dtrace.h, docs/format.md s.10) */
	REC_DTRACE_INTERVAL = 20,	/* the pages one interval of a dirty trace dirtied */
	REC_DISK_BLOCKS = 21,	/* blocks of a checkpointed disk (docs/format.md s.9.1) */
	REC_TYPE_MAX
};

/*
 * Appends one record (header + payload) to out, all or nothing. 0, or
 * KM_ERR_TOO_LARGE if len > REC_MAX_PAYLOAD, or out's errors
 * (KM_ERR_NO_SPACE, -ENOMEM).
 */
int rec_put(struct buf *out, uint32_t type, const void *payload, uint32_t len);
/*
 * The 16-byte header of a record with this payload, for writers that send
 * a large payload from where it lies instead of copying it (stream.c).
 * KM_ERR_TOO_LARGE as rec_put.
 */
int rec_header(uint32_t type, const void *payload, uint32_t len, uint8_t hdr[REC_HDR_SIZE]);

/*
 * Parses one record from the front of in. On success consumes it and points
 * *payload at its payload inside in's storage (valid until in changes).
 * KM_ERR_TRUNCATED: the record is not complete yet, nothing consumed.
 * KM_ERR_TOO_LARGE: the declared length exceeds max_payload (which is
 * clamped to REC_MAX_PAYLOAD), known from the 16 header bytes alone.
 * KM_ERR_CORRUPT: the checksum does not match, nothing consumed.
 * The type is not checked: that is the caller's business (docs/format.md).
 */
int rec_get(struct buf *in, uint32_t max_payload, uint32_t *type,
	    const uint8_t **payload, uint32_t *len);

/*
 * For a reader that has a whole file in memory (a lazy restore maps its
 * checkpoint files) and checks each payload only when it first uses it:
 * rec_frame reads the header at p (avail bytes from there) and bounds the
 * payload, without the checksum: 0, KM_ERR_TRUNCATED, KM_ERR_TOO_LARGE as
 * rec_get. rec_verify then checks the checksum of that framed record: 0
 * or KM_ERR_CORRUPT.
 */
int rec_frame(const uint8_t *p, size_t avail, uint32_t max_payload, uint32_t *type,
	      uint32_t *len);
int rec_verify(const uint8_t *p);
/* Appends a field (tag, length, bytes) to a payload being built, all or nothing. */
int rec_put_field(struct buf *payload, uint32_t tag, const void *data, uint32_t len);
int rec_put_field_u64(struct buf *payload, uint32_t tag, uint64_t v);

/*
 * Takes the next field from a payload. 0 and the field, KM_ERR_END when the
 * payload is exhausted, KM_ERR_TRUNCATED if a field runs past the end
 * (nothing consumed). *data points into payload's storage.
 */
int rec_get_field(struct buf *payload, uint32_t *tag, const uint8_t **data,
		  uint32_t *len);
/* A u64 field's value; KM_ERR_CORRUPT if len is not 8. */
int rec_field_u64(const uint8_t *data, uint32_t len, uint64_t *v);
/*
 * The field tag of a field-list payload (the last one if repeated): 0 and
 * its bytes (pointing into payload), KM_ERR_END if absent, KM_ERR_CORRUPT
 * if the payload is malformed.
 */
int rec_find_field(const uint8_t *payload, uint32_t len, uint32_t tag, const uint8_t **data,
		   uint32_t *dlen);
/*
 * The u64 field tag of a field-list payload (the last one if repeated):
 * 0, KM_ERR_END if absent, KM_ERR_CORRUPT if the payload or the field is
 * malformed.
 */
int rec_find_u64(const uint8_t *payload, uint32_t len, uint32_t tag, uint64_t *v);

#endif
