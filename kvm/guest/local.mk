EXTRA_DIST += kvm/guest/abi.h kvm/guest/hypercall.h
