/*
 * Guest side of the hypercall ABI (abi.h), header-only so that both the flat
 * workload images and the guest functions inside host test binaries (the
 * selftests-style library in tests/lib/) can use it. Everything here is
 * static inline and freestanding: no libc, no globals.
 */
#ifndef KVM_GUEST_HYPERCALL_H
#define KVM_GUEST_HYPERCALL_H

#include "abi.h"

static inline unsigned int km_hypercall(unsigned int nr, unsigned long long a0,
					unsigned long long a1, unsigned long long a2,
					unsigned long long a3)
{
	unsigned int ret;
	register unsigned long long r8 asm("r8") = a2;
	register unsigned long long r9 asm("r9") = a3;

	/*
	 * A 32-bit MMIO read (abi.h says why not `in`). "memory": the VMM
	 * reads and may write guest memory during the call. volatile and the
	 * asm keep the compiler from merging or dropping the load.
	 */
	asm volatile("movl (%%rcx), %%eax"
		     : "=a"(ret)
		     : "c"(KM_MMIO_HC + 4ULL * nr), "D"(a0), "S"(a1),
		       "r"(r8), "r"(r9)
		     : "memory");
	return ret;
}

static inline unsigned long long km_rdtsc(void)
{
	unsigned int lo, hi;

	asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((unsigned long long)hi << 32) | lo;
}

/* One console byte (the MMIO twin of COM1's transmit register). */
static inline void km_serial_putc(unsigned char v)
{
	asm volatile("movb %0, (%1)" : : "a"(v), "c"(KM_MMIO_SERIAL) : "memory");
}

static inline unsigned int km_console(const char *s, unsigned long long len)
{
	return km_hypercall(KM_HC_CONSOLE, (unsigned long long)s, len, 0, 0);
}

static inline unsigned int km_progress(unsigned long long counter,
				       unsigned long long max_gap_tsc)
{
	return km_hypercall(KM_HC_PROGRESS, counter, km_rdtsc(), max_gap_tsc, 0);
}

static inline unsigned int km_sleep_us(unsigned long long us)
{
	return km_hypercall(KM_HC_SLEEP, us, 0, 0, 0);
}

static inline void km_check_result(unsigned long long pages, unsigned long long bad)
{
	km_hypercall(KM_HC_CHECK_RESULT, pages, bad, 0, 0);
}

/* Does not return: the VMM stops this vCPU. */
static inline __attribute__((noreturn)) void km_done(unsigned long long status)
{
	for (;;)
		km_hypercall(KM_HC_DONE, status, 0, 0, 0);
}

static inline __attribute__((noreturn)) void km_fail(const char *msg,
						     unsigned long long len)
{
	for (;;)
		km_hypercall(KM_HC_FAIL, (unsigned long long)msg, len, 0, 0);
}

static inline unsigned long long km_strlen(const char *s)
{
	unsigned long long n = 0;

	while (s[n])
		n++;
	return n;
}

static inline void km_strlcpy(char *dst, const char *src, unsigned long long size)
{
	unsigned long long i;

	for (i = 0; i + 1 < size && src[i]; i++)
		dst[i] = src[i];
	if (size)
		dst[i] = 0;
}

static inline unsigned int km_ucall(unsigned long long cmd, unsigned long long a0,
				    unsigned long long a1, unsigned long long a2,
				    const char *file, const char *msg)
{
	struct km_ucall uc;

	uc.cmd = cmd;
	uc.args[0] = a0;
	uc.args[1] = a1;
	uc.args[2] = a2;
	uc.args[3] = 0;
	km_strlcpy(uc.file, file ? file : "", sizeof(uc.file));
	km_strlcpy(uc.msg, msg ? msg : "", sizeof(uc.msg));
	return km_hypercall(KM_HC_UCALL, (unsigned long long)&uc, 0, 0, 0);
}

#define KM_GUEST_SYNC(stage) \
	km_ucall(KM_UCALL_SYNC, (stage), 0, 0, __FILE__, 0)
#define KM_GUEST_PRINT(text) \
	km_ucall(KM_UCALL_PRINT, 0, 0, 0, __FILE__, (text))
#define KM_GUEST_DONE() \
	km_ucall(KM_UCALL_DONE, 0, 0, 0, __FILE__, 0)
/* Reports the expression, file, line and two values, then stops the vCPU. */
#define KM_GUEST_ASSERT_EQ(a, b)						\
	do {									\
		unsigned long long __a = (a), __b = (b);			\
		if (__a != __b)							\
			km_ucall(KM_UCALL_ASSERT, __LINE__, __a, __b, __FILE__, \
				 #a " == " #b);					\
	} while (0)
#define KM_GUEST_ASSERT(x)							\
	do {									\
		if (!(x))							\
			km_ucall(KM_UCALL_ASSERT, __LINE__, 0, 0, __FILE__, #x); \
	} while (0)

#endif
