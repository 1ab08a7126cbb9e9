/*
 * LD_PRELOAD library for tests/bench/overhead.py: notes when a VMM (uvm-shim,
 * QEMU, anything that calls glibc's ioctl) issues its first KVM_RUN, without
 * strace: CLOCK_MONOTONIC and the process's CPU time at that moment, written
 * into a 4 KiB file named by $OVERHEAD_FIRST_RUN_FILE that this library maps
 * at load time. At KVM_RUN time it makes no system call but clock_gettime, so
 * it runs under the shim's vCPU seccomp filter.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* The file's layout, read by overhead.py: three little-endian u64. */
struct first_run_record {
	uint64_t seen; /* 1 once the other two are written */
	uint64_t wall_ns;
	uint64_t cpu_ns;
};

static int (*real_ioctl)(int, unsigned long, ...);
static struct first_run_record *rec;
static int seen;

__attribute__((constructor)) static void overhead_preload_init(void)
{
	const char *path = getenv("OVERHEAD_FIRST_RUN_FILE");
	int fd;

	real_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
	if (!path)
		return;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	rec = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (rec == MAP_FAILED)
		rec = NULL;
	close(fd);
}

static uint64_t ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (req == KVM_RUN && rec && !__atomic_exchange_n(&seen, 1, __ATOMIC_ACQ_REL)) {
		rec->wall_ns = ns(CLOCK_MONOTONIC);
		rec->cpu_ns = ns(CLOCK_PROCESS_CPUTIME_ID);
		__atomic_store_n(&rec->seen, 1, __ATOMIC_RELEASE);
	}
	return real_ioctl(fd, req, arg);
}
