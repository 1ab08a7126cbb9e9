/* Options of `uvm-shim run`, parsed without side effects (unit-tested). */
#ifndef SHIM_RUN_OPTS_H
#define SHIM_RUN_OPTS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RUN_MAX_DISKS  32
#define RUN_MAX_PMEM   16
#define RUN_MAX_SHARES 16
#define RUN_MAX_NICS   8

/*
 * Where the serial console goes. Without --console: stdio (stdout, input from
 * stdin) when no command is given; stderr when one is, so that stdout carries
 * the command's output only.
 */
enum console_kind { CONSOLE_STDIO, CONSOLE_STDERR, CONSOLE_FILE, CONSOLE_NONE };

/* `run -- CMD`: a pty in the guest when stdin is a terminal (auto), always, or never. */
enum run_tty_mode { RUN_TTY_AUTO, RUN_TTY_ON, RUN_TTY_OFF };

struct run_disk {
	const char *path;
	bool read_only;
	const char *serial;
};

struct run_pmem {
	const char *path;
	bool read_only;
};

/* --share HOSTDIR:GUESTDIR[,ro]: a 9p share mounted before CMD runs (needs -- CMD). */
struct run_share {
	const char *host, *guest;
	bool read_only;
};

struct run_opts {
	const char *kernel; /* NULL: the default guest */
	const char *initrd;
	const char *firmware; /* UEFI boot through this image (OVMF.fd) */
	const char *cmdline;  /* appended to the base command line */
	/* --efi-dir/--efi-path/--efi-initrd/--efi-args: the uefi form (shim/uefi_params.h),
	 * resolved beneath the dir into efi_kernel/efi_initrd, which kernel/initrd then name. */
	const char *efi_dir, *efi_path, *efi_initrd, *efi_args;
	char efi_kernel_buf[PATH_MAX], efi_initrd_buf[PATH_MAX];
	int cpus;
	uint64_t mem_mib;
	int io_threads; /* --io-threads N, 1..IO_THREADS_MAX; 0: the machine's default */
	enum console_kind console;
	const char *console_path;
	bool entry16; /* boot a bzImage through its 16-bit entry (debugging, tests) */
	bool help;
	bool no_seccomp; /* --no-seccomp: no filters, no privilege drop (debugging) */
	struct run_disk disks[RUN_MAX_DISKS];
	int nr_disks;
	char **guest_argv; /* after "--": run this command in the guest (through its agent) */
	int guest_argc;
	enum run_tty_mode tty; /* --tty, --no-tty */
	char disk_buf[RUN_MAX_DISKS][512];
	struct run_pmem pmems[RUN_MAX_PMEM]; /* --pmem PATH[,ro] */
	int nr_pmems;
	char pmem_buf[RUN_MAX_PMEM][512];
	struct run_share shares[RUN_MAX_SHARES]; /* --share HOSTDIR:GUESTDIR[,ro] */
	int nr_shares;
	char share_buf[RUN_MAX_SHARES][1024];
	const char *rootfs; /* --rootfs DIR: CMD runs in a container whose root is DIR */
	const char *nets[RUN_MAX_NICS]; /* --net specs, checked by run_net_params */
	int nr_nets;
};

/* Parses argv (argv[0] is "run"); returns 0 or -EINVAL with a message in err. */
int run_opts_parse(struct run_opts *o, int argc, char **argv, char *err, size_t errlen);

/*
 * A --net spec ("user", or "tap=NAME[,mac=MAC][,ip=CIDR][,gw=IP][,mtu=N]") as
 * nic.add parameters (id "net<index>"), checked like nic.add checks them.
 * Returns 0 with *out (the caller deletes it) or -EINVAL with err.
 */
struct cJSON;
int run_net_params(const char *spec, int index, struct cJSON **out, char *err, size_t errlen);

extern const char run_usage[];

#endif
