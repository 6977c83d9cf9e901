/*
 * Entry of every workload image: the first byte of the image, at
 * KM_IMAGE_GPA (guest.lds puts .text.entry first; check-image.sh verifies
 * it). kvm-run enters here on every vCPU in 64-bit mode at CPL3 with
 * RSP = top of the vCPU's stack, RDI = boot info, RSI = vCPU index (abi.h),
 * which are guest_main's two arguments as they stand.
 */
	.section .text.entry, "ax", @progbits
	.globl	_start
	.type	_start, @function
_start:
	cld			/* the string instructions of memset/memcpy need DF=0 */
	andq	$-16, %rsp	/* SysV: 16-byte aligned before the call */
	xorl	%ebp, %ebp	/* the outermost frame, for debuggers */
	call	guest_main
	call	rt_done		/* km_done(0); never returns */
	ud2			/* unreachable: a fault here stops the VM loudly */
	.size	_start, . - _start

	.section .note.GNU-stack, "", @progbits
