/* The PC platform of a Linux guest (x86/pc.h). */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "record.h"
#include "kvm/kvm.h"
#include "kvm/state.h"
#include "kvm/uart.h"
#include "kvm/virtio-blk.h"
#include "kvm/x86/pc.h"
#include "kvm/x86/x86.h"

int pc__create(struct kvm *kvm)
{
	kvm->linux_guest = true;
	x86__cpuid_vmm_bits(kvm->vm_fd, kvm->cpuid);
	return kvm->uart ? 0 : uart__create(kvm);
}

int pc__create_from_config(struct kvm *kvm, const uint8_t *p, uint32_t len, char *why,
			   size_t whylen)
{
	struct virtio_blk *b = NULL;
	const uint8_t *path;
	uint32_t plen;
	uint64_t ro = 0;
	char name[4096];
	int r;

	if ((r = pc__create(kvm)) != 0) {
		snprintf(why, whylen, "cannot make the VM's PC platform: %s", km_strerror(r));
		return r;
	}
	r = rec_find_field(p, len, ST_CFG_DISK, &path, &plen);
	if (r == KM_ERR_END)
		return 0;
	if (r != 0 || plen == 0 || plen >= sizeof(name) || memchr(path, 0, plen) ||
	    ((r = rec_find_u64(p, len, ST_CFG_DISK_RO, &ro)) != 0 && r != KM_ERR_END)) {
		snprintf(why, whylen, "corrupt disk in the VM config");
		return KM_ERR_CORRUPT;
	}
	memcpy(name, path, plen);
	name[plen] = 0;
	if ((r = virtio_blk__open(name, (ro ? VIRTIO_BLK_RO : 0) | VIRTIO_BLK_NOLOCK, &b)) != 0) {
		snprintf(why, whylen, "cannot open the VM's disk %s here (storage must be shared "
			 "between the hosts, at the same path): %s", name, km_strerror(r));
		return r;
	}
	if ((r = virtio_blk__attach(b, kvm)) != 0) {
		virtio_blk__destroy(b);
		snprintf(why, whylen, "cannot attach the disk: %s", km_strerror(r));
	}
	return r;
}

int pc__disk_release(struct kvm *kvm)
{
	int r;

	if (!kvm->blk)
		return 0;
	if ((r = virtio_blk__sync(kvm->blk)) != 0)
		return r;
	virtio_blk__unlock(kvm->blk);
	return 0;
}

int pc__disk_take(struct kvm *kvm)
{
	return kvm->blk ? virtio_blk__lock(kvm->blk) : 0;
}
