/*
 * kmwork's disk mode: blocks of 4 KiB stamped like its pages (stamp.h,
 * the block number as the index), written once by a guest and read back
 * later, in the guest or on the host against the disk's image file.
 * O_DIRECT where the file allows it, so that a guest's verify reads the
 * disk, not its page cache. Both print their one KMWORK line (or a
 * "KMWORK error: ..." line) and return kmwork's exit status.
 */
#ifndef KM_GUEST_LINUX_DISK_H
#define KM_GUEST_LINUX_DISK_H

#include <stdint.h>

/*
 * Stamps blocks 0..blocks-1 of dev (made if it is a file not there yet)
 * with version and syncs: "KMWORK disk-write dev=D blocks=N version=V".
 * 0, or 1 on an error.
 */
int disk_write(const char *dev, uint64_t blocks, uint64_t version);

/*
 * Reads blocks 0..blocks-1 of dev (0: all of it) back and counts those
 * that are not stamped with their number and a matching checksum, or,
 * with version != 0, are of another version: "KMWORK disk-verify dev=D
 * blocks=N bad=B versions=LO-HI" (and " first_bad=I" when B > 0). 0 once
 * it could read dev (whatever B), 1 if it could not open it.
 */
int disk_verify(const char *dev, uint64_t blocks, uint64_t version);

#endif
