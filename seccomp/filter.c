/*
 * Per-thread-class seccomp allowlists (seccomp.h). Every line names the code
 * path that needs the call; a call with no line kills the process.
 *
 * The loop class is the vCPU list plus loop_rules[]: a thread created by a
 * filtered thread runs under both filters, and this keeps the vCPU list the
 * narrower one whatever the creation order.
 */
#include "seccomp/seccomp.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <linux/sockios.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <seccomp.h>

#include "vmm/log.h"

/* <linux/fs.h> clashes with glibc's <sys/mount.h>; this is its value on every arch. */
#ifndef BLKGETSIZE64
#define BLKGETSIZE64 _IOR(0x12, 114, size_t)
#endif

#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_ASAN 1
#endif
#endif

#define TAG "seccomp"

struct sandbox_rule {
	int nr;
	unsigned int nargs;
	bool self_pid; /* arg[0].datum_a is filled with getpid() when the filter is built */
	struct scmp_arg_cmp arg[1];
};

/* A call with any arguments. */
#define ALLOW(name)                                                                                \
	{                                                                                          \
		.nr = SCMP_SYS(name)                                                               \
	}
/* A call whose argument i equals v (compared on the low 32 bits for ioctl numbers). */
#define ALLOW_ARG(name, i, v)                                                                      \
	{                                                                                          \
		.nr = SCMP_SYS(name), .nargs = 1,                                                  \
		.arg = {{.arg = (i), .op = SCMP_CMP_EQ, .datum_a = (v)}},                          \
	}
/* The kernel reads an ioctl request as an unsigned int: match those 32 bits only. */
#define ALLOW_IOCTL(req)                                                                           \
	{                                                                                          \
		.nr = SCMP_SYS(ioctl), .nargs = 1,                                                 \
		.arg = {{.arg = 1,                                                                 \
			 .op = SCMP_CMP_MASKED_EQ,                                                 \
			 .datum_a = 0xffffffffULL,                                                 \
			 .datum_b = (uint32_t)(req)}},                                             \
	}
/* A signal call whose target thread group (argument 0) is this process: set at load. */
#define ALLOW_SELF(name)                                                                           \
	{                                                                                          \
		.nr = SCMP_SYS(name), .nargs = 1, .self_pid = true,                                \
		.arg = {{.arg = 0, .op = SCMP_CMP_EQ}},                                            \
	}
/* mmap/mprotect: never an executable mapping. */
#define ALLOW_NOEXEC(name)                                                                         \
	{                                                                                          \
		.nr = SCMP_SYS(name), .nargs = 1,                                                  \
		.arg = {{.arg = 2, .op = SCMP_CMP_MASKED_EQ, .datum_a = PROT_EXEC, .datum_b = 0}}, \
	}

/* ---- every thread: locks, memory, signals, logging, exit --------------------------------- */

static const struct sandbox_rule thread_rules[] = {
    /* Log lines to stderr (vmm/log.c); on a vCPU also the console fd and eventfd signals. */
    ALLOW(write),
    /* Mutexes of the buses, the PCI bridge and the devices; the pause condition; 9p's queue. */
    ALLOW(futex),
    /* A futex wait interrupted by the kick signal restarts through this. */
    ALLOW(restart_syscall),
    /* vcpu_kick -> pthread_kill (glibc: signals blocked, getpid, tgkill) when a vCPU ends the VM.
     */
    ALLOW(rt_sigprocmask),
    ALLOW(getpid),
    ALLOW(gettid),
    ALLOW_SELF(tgkill), /* only threads of this process */
    /* Return from vcpu_kick_handler (the SIGUSR1 that makes KVM_RUN return). */
    ALLOW(rt_sigreturn),
    /*
     * guest.dump_stacks (gcs/stacks_core.c): the stack-request handler runs on every thread;
     * its libunwind walk checks that an address is mapped before reading it (mincore),
     * then sem_post (futex, above) and rt_sigreturn (above).
     */
    ALLOW(mincore),
    /*
     * ...and where it falls back to probing an address through a pipe (Debian's
     * libunwind: write the byte to its pipe, read it back): read here, write above.
     * Found on the 9p workers, whose list has no other read.
     */
    ALLOW(read),
    /* malloc: bus regions registered when the guest maps a BAR; a thread's first arena. */
    ALLOW_NOEXEC(mmap),
    ALLOW_NOEXEC(mprotect),
    ALLOW(munmap),
    ALLOW(mremap),
    ALLOW(madvise),
    ALLOW(brk),
    /* log_ratelimit_ok when the vDSO is not used. */
    ALLOW(clock_gettime),
    /* vmm/log.c names the thread on every line (pthread_getname_np on itself). */
    ALLOW_ARG(prctl, 0, PR_GET_NAME),
    /* A thread returns: glibc frees the stack's pages, then the thread exits. */
    ALLOW(exit),
    /* Process exit from any thread (abort paths; the trap mode's SIGSYS re-raise). */
    ALLOW(exit_group),
};

/* ---- vCPU threads (vmm/vcpu.c vcpu_thread and the exits it dispatches) --------------------- */

static const struct sandbox_rule vcpu_rules[] = {
    /* vcpu_thread: the run loop itself. */
    ALLOW_IOCTL(KVM_RUN),
    /* vcpu_dump: registers printed on a triple fault, failed entry or internal error. */
    ALLOW_IOCTL(KVM_GET_REGS),
    ALLOW_IOCTL(KVM_GET_SREGS),
    /* vm_irq_line: the 8250 UART (vmm/uart.c) raises and lowers its IOAPIC line. */
    ALLOW_IOCTL(KVM_IRQ_LINE),
    /* vm_msi_route_set / vm_msi_gsi_free: MSI-X table and control writes (vmm/pci.c). */
    ALLOW_IOCTL(KVM_SET_GSI_ROUTING),
    /* vm_irqfd: an MSI-X vector unmasked for the first time gets its irqfd. */
    ALLOW_IOCTL(KVM_IRQFD),
    /* vm_ioeventfd: the guest moves a virtio BAR 0; the notify ioeventfds follow it. */
    ALLOW_IOCTL(KVM_IOEVENTFD),
    /* msix_vec_update: a vector's eventfd is created when the guest first unmasks it. */
    ALLOW(eventfd2),
    /* blk_reset -> blk_backend_reap: a guest reset drains the completion eventfd... */
    ALLOW(read),
    /*
     * ...and waits for the I/O in flight by polling it (virtio/blk_uring.c): never
     * io_uring_enter here, a vCPU has no business inside a ring.
     */
    ALLOW(ppoll),
};

/* ---- the event-loop thread (shim/run.c, shim/ctl_serve.c, vmm/loop.c): adds to vcpu_rules -- */

static const struct sandbox_rule loop_rules[] = {
    /* loop_run, loop_add, loop_mod, loop_del. */
    ALLOW(epoll_wait),
    ALLOW(epoll_pwait),
    ALLOW(epoll_ctl),
    /* ctl replies (shim/ctl.c), stdio relays (bridge_stdio.c), vsock_uds.c: gathered writes. */
    ALLOW(writev),
    /* vsock_uds.c peeks at the "CONNECT <port>" line (recv MSG_PEEK). */
    ALLOW(recvfrom),
    /* vsock_uds.c: host programs connect to the VM's Unix socket. */
    ALLOW(accept4),
    /* vsock_uds.c (guest -> <path>_<port>), bridge_stdio.c (stdio on a Unix socket). */
    ALLOW_ARG(socket, 0, AF_UNIX),
    ALLOW(connect),
    /* vsock_uds.c and bridge_stdio.c half-close a stream at EOF. */
    ALLOW(shutdown),
    /*
     * guest.dump_stacks (/proc/self/task/N/stat, the ELF files mapped, for symbols);
     * nic.add of a tap (/dev/net/tun, the netns file). What else the parent names
     * comes from the opener; Landlock (seccomp/landlock.c) allows no other path.
     */
    ALLOW(openat),
    ALLOW(close),
    /* stdio_open_host sets O_NONBLOCK on a FIFO. */
    ALLOW(fcntl),
    /* stdio streams (fopen of /proc files) size their buffers; a runtime disk's size. */
    ALLOW(fstat),
    ALLOW(newfstatat),
    /*
     * The opener (shim/opener.c): a request out, its answer and fd in (SCM_RIGHTS).
     * Every path the parent names after setup is opened there (host_open), and the
     * vsock socket is unlinked there at teardown: this thread is Landlocked.
     */
    ALLOW(sendto),
    ALLOW(recvmsg),
    /*
     * serve: vm.start arms the start timeout, the bridge's ready disarms it;
     * run -- CMD (shim/run_guest.c): the agent, drain and shutdown deadlines.
     */
    ALLOW(timerfd_settime),
    /* virtio-rng fills the guest's buffers (virtio/rng.c). */
    ALLOW(getrandom),
    /*
     * virtio-blk on io_uring (blk_uring.c): rings are created disabled, restricted to
     * readv, writev, fsync and fallocate (IORING_REGISTER_RESTRICTIONS), then enabled;
     * submissions and completions go through io_uring_enter.
     */
    ALLOW(io_uring_setup),
    ALLOW(io_uring_enter),
    /* ...and a disk created at run time registers its completion eventfd. */
    ALLOW(io_uring_register),
    /* virtio_blk_create on a block device: its size. */
    ALLOW_IOCTL(BLKGETSIZE64),
    /* vpmem.add/remove at run time (vmm/mem_slots.c): a file's memory slot in and out. */
    ALLOW_IOCTL(KVM_SET_USER_MEMORY_REGION),
    /* guest.dump_stacks (gcs/stacks_core.c): one queued signal per thread asks for its stack... */
    ALLOW_SELF(rt_tgsigqueueinfo),
    /* ...of the threads listed in /proc/self/task (opendir/readdir). */
    ALLOW(getdents64),
    /*
     * run: isatty/tcgetattr and the tty restore when the VM ends (run_tty_restore);
     * run -- CMD puts the terminal in raw mode once CMD runs (run_guest.c proc_started).
     */
    ALLOW_IOCTL(TCGETS),
    ALLOW_IOCTL(TCSETS),
    /* run -- CMD in tty mode: the terminal's size on SIGWINCH, sent as a resize. */
    ALLOW_IOCTL(TIOCGWINSZ),
    /* nic.add of a tap while the VM runs: the tap exists (if_nametoindex), is opened... */
    ALLOW_IOCTL(SIOCGIFINDEX),
    ALLOW_IOCTL(TUNSETIFF),
    ALLOW_IOCTL(TUNSETVNETHDRSZ),
    ALLOW_IOCTL(TUNGETIFF),
    /* ...and starts without offloads (net_tap_open; the guest's come on the I/O thread). */
    ALLOW_IOCTL(TUNSETOFFLOAD),
    /* ...in the pod's network namespace when one is named (net_tap_open: there and back). */
    ALLOW_ARG(setns, 1, CLONE_NEWNET),
    /*
     * A user-mode NIC's passt (net_passt.c) is killed and reaped when its NIC goes,
     * through the pidfd taken when it was spawned (before this filter): no kill(),
     * which would reach any process.
     */
    ALLOW(pidfd_send_signal),
    ALLOW(waitid),
};

/*
 * ---- I/O threads (vmm/io_thread.c running blk, pmem, net and 9p): thread_rules and these ---
 * A device's queue work: guest rings parsed, requests handed to a disk's
 * io_uring or a share's workers (futex), completions read back, frames
 * moved to and from a NIC's backend fd (read and write in thread_rules),
 * interrupts through irqfds (write). No socket, no open, no KVM, one ioctl:
 * every fd it uses was made before (the disk, its ring and eventfds, the tap
 * or passt's socket, the loop's epoll).
 */
static const struct sandbox_rule io_rules[] = {
    /* loop_run and the table calls it runs for the control thread (vmm/loop.c). */
    ALLOW(epoll_wait),
    ALLOW(epoll_pwait),
    ALLOW(epoll_ctl),
    /* blk_uring.c: submissions (io_uring_submit) on the disk's restricted ring. */
    ALLOW(io_uring_enter),
    /* blk_backend_reap's wait for a ring's eventfd, if a drain ever runs here. */
    ALLOW(ppoll),
    /*
     * virtio-net (virtio/net.c): a frame and its virtio-net header in one call,
     * on the tap (net_tap.c readv/writev) or passt's stream socket (net_passt.c
     * writev; its reads and the flush of a partial frame are read/write).
     */
    ALLOW(readv),
    ALLOW(writev),
    /* net_tap.c set_offloads: the offloads the guest negotiated, applied on this thread. */
    ALLOW_IOCTL(TUNSETOFFLOAD),
};

/*
 * ---- 9p workers (virtio/p9_pool.c running virtio/p9_*.c): thread_rules and these ---------
 * Host file I/O beneath a share's root fd, on fds the worker holds. No socket,
 * no ioctl, no KVM, no process or thread creation, no plain open(): every name
 * is resolved with openat2 beneath the share (p9_fid.c) or reopened through
 * the share server's /proc/self/fd directory fd (p9_reopen).
 */
static const struct sandbox_rule p9_rules[] = {
    /* p9_walk_one and p9_op_lcreate: one component beneath a directory fd. */
    ALLOW(openat2),
    /* p9_reopen: a fid's O_PATH fd opened for I/O through /proc/self/fd/N. */
    ALLOW(openat),
    ALLOW(close),
    /* Fid clones (F_DUPFD_CLOEXEC), Tlock and Tgetlock (F_OFD_SETLK, F_OFD_GETLK). */
    ALLOW(fcntl),
    /* Tgetattr, walks and every check of what a fid names. */
    ALLOW(fstat),
    ALLOW(newfstatat),
    ALLOW(statx),
    /* Tstatfs. */
    ALLOW(fstatfs),
    /* Tread, Twrite, Treaddir (and its offset). */
    ALLOW(pread64),
    ALLOW(pwrite64),
    ALLOW(getdents64),
    ALLOW(lseek),
    /* Tfsync; Tsetattr's size, mode, owner and times. */
    ALLOW(fsync),
    ALLOW(fdatasync),
    ALLOW(ftruncate),
    ALLOW(fchmodat),
    ALLOW(fchownat),
    ALLOW(utimensat),
    /* Tmkdir, Tsymlink, Tmknod (device nodes only where the share allows them), Tlink. */
    ALLOW(mkdirat),
    ALLOW(symlinkat),
    ALLOW(mknodat),
    ALLOW(linkat),
    /* Trename, Trenameat, Tunlinkat, Tremove, Treadlink. */
    ALLOW(renameat),
    ALLOW(renameat2),
    ALLOW(unlinkat),
    ALLOW(readlinkat),
    /* Txattrwalk, Txattrcreate + clunk (p9_xattr.c): through /proc/self/fd/N. */
    ALLOW(getxattr),
    ALLOW(listxattr),
    ALLOW(setxattr),
    ALLOW(removexattr),
};

/*
 * ---- the 9p spawner (virtio/p9_spawn.c): thread_rules, p9_rules and these ---------------
 * Makes each share's workers when the share is added; they are born under
 * this filter and add SANDBOX_P9 (seccomp filters stack: this list must hold
 * the workers' calls). Not Landlocked; it never sees guest data.
 */
/* glibc's pthread_create (create_thread): a thread of this process, nothing else. */
#define P9_SPAWN_CLONE_FLAGS                                                                       \
	(CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SYSVSEM | CLONE_SIGHAND | CLONE_THREAD |        \
	 CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID)

static const struct sandbox_rule p9_spawn_rules[] = {
    /* p9_pool_create: the workers (clone3 answers ENOSYS: its flags are out of reach). */
    ALLOW_ARG(clone, 0, P9_SPAWN_CLONE_FLAGS),
    /* A new thread's start in glibc (start_thread). */
    ALLOW(set_robust_list),
    ALLOW(rseq),
    /* sandbox_p9_worker on each new worker: a read-only share's capabilities... */
    ALLOW(capget),
    ALLOW(capset),
    /* ...Landlock beneath the share's root (sandbox_landlock_beneath)... */
    ALLOW(landlock_create_ruleset),
    ALLOW(landlock_add_rule),
    ALLOW(landlock_restrict_self),
    ALLOW_ARG(prctl, 0, PR_SET_NO_NEW_PRIVS),
    /* ...and the 9p filter, compiled before (sandbox_install). */
    ALLOW_ARG(seccomp, 0, SECCOMP_SET_MODE_FILTER),
};

/*
 * ---- the opener process (shim/opener.c): thread_rules and these ------------------------
 * Opens what the shim asks for, checks it, passes the fd back. No ioctl, no
 * KVM, no execve, no clone, no signal to anyone but itself.
 */
static const struct sandbox_rule opener_rules[] = {
    /* One request in, one answer (with its fd, SCM_RIGHTS) out. */
    ALLOW(recvfrom),
    ALLOW(sendmsg),
    /* lookup: every name, as O_PATH without magic links, before its checks. */
    ALLOW(openat2),
    /* serve_open, stdio_open_pinned: the checked fd reopened through /proc/self/fd/N;
     * a netns reached through /proc/PID/ns/net; create_file. */
    ALLOW(openat),
    ALLOW(close),
    /* check_fd: what the fd is, and its resolved path. */
    ALLOW(fstat),
    ALLOW(newfstatat),
    ALLOW(readlinkat),
    ALLOW(fstatfs), /* a network namespace file is let through as such */
    /* A console file asked with O_TRUNC is truncated once it passed the check. */
    ALLOW(ftruncate),
    /* stdio on a Unix socket: connected here, made non-blocking (stdio_open_direct). */
    ALLOW_ARG(socket, 0, AF_UNIX),
    ALLOW(connect),
    ALLOW(fcntl),
    /* serve_unlink_socket: the VM's vsock socket at teardown. */
    ALLOW(unlinkat),
};

/*
 * ---- the mounter process (shim/mounter.c): thread_rules and these ----------------------
 * Mounts a pod container's rootfs once its request passed the rules; keeps
 * CAP_SYS_ADMIN, so its list is the shortest there is around mount(2).
 */
static const struct sandbox_rule mounter_rules[] = {
    /* One request in, one answer out. */
    ALLOW(recvfrom),
    ALLOW(sendto),
    /* no_symlink: every path looked up once without symlinks, as O_PATH. */
    ALLOW(openat2),
    ALLOW(close),
    /* task_mount_rootfs: the mounts, a read-only bind's remount, the undo of a partial one. */
    ALLOW(mount),
    ALLOW(umount2),
};

/*
 * AddressSanitizer/LeakSanitizer (the test builds, build/asan/) make calls the
 * product does not: each thread sets and removes an alternate signal stack,
 * the runtime yields in its spin locks, reports and the leak check at exit
 * read /proc/self/maps and /proc/self/exe through raw open/stat/readlink/
 * getdents (not glibc's openat/newfstatat), and the leak check (on the main,
 * loop, thread at exit) clones a tracer that ptrace-attaches to the process,
 * waits for it and lists /proc/self/task. Only built in when the runtime is
 * there. glibc's openat and newfstatat stay out of this list on purpose: the
 * e2e suite runs the ASan build, and a product path that opens a file on a
 * vCPU thread must fail there too. The price: an ASan report on a vCPU thread
 * dies when its symbolizer opens the binary; rerun with UVM_SECCOMP_LOG=1.
 */
#ifdef SANDBOX_ASAN
static const struct sandbox_rule asan_rules[] = {
    ALLOW(sigaltstack), ALLOW(sched_yield), ALLOW(open),	 ALLOW(stat),
    ALLOW(lstat),	ALLOW(fstat),	    ALLOW(access),	 ALLOW(readlink),
    ALLOW(close),	ALLOW(lseek),	    ALLOW(getdents),	 ALLOW(getdents64),
    ALLOW(prctl),	ALLOW(clone),	    ALLOW(ptrace),	 ALLOW(wait4),
    ALLOW(kill),	ALLOW(getppid),	    ALLOW(rt_sigaction), ALLOW(sched_getaffinity),
    ALLOW(writev),	ALLOW(pipe2),	    ALLOW(nanosleep),	 ALLOW(clock_nanosleep),
};
#endif

/* ---- building and loading ------------------------------------------------------------------ */

static enum sandbox_action sandbox_setting = SANDBOX_KILL;

static const char *const class_names[SANDBOX_NR_CLASSES] = {
    [SANDBOX_VCPU] = "vcpu",	     [SANDBOX_LOOP] = "loop",	  [SANDBOX_P9] = "9p",
    [SANDBOX_P9_SPAWN] = "9p-spawn", [SANDBOX_OPENER] = "opener", [SANDBOX_IO] = "io",
    [SANDBOX_MOUNTER] = "mounter",
};

const char *sandbox_class_name(enum sandbox_class cls)
{
	return (unsigned)cls < SANDBOX_NR_CLASSES ? class_names[cls] : "?";
}

enum sandbox_action sandbox_mode(void)
{
	return sandbox_setting;
}

/* Trap mode: name the thread and the call on stderr, then die of SIGSYS anyway. */
static void sandbox_sigsys(int sig, siginfo_t *si, void *uc)
{
	char name[16] = "?", msg[160];
	int n;

	(void)uc;
	prctl(PR_GET_NAME, name, 0, 0, 0);
	n = snprintf(msg, sizeof(msg),
		     "uvm-shim[%.16s] error seccomp: syscall %d is not in this thread's allowlist "
		     "(seccomp/filter.c); `scmp_sys_resolver %d` names it\n",
		     name, si->si_syscall, si->si_syscall);
	if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0) {
		/* nothing left to tell */
	}
	/* SA_RESETHAND restored the default action: this SIGSYS ends the process. */
	syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig);
}

void sandbox_configure(bool disable)
{
	const char *off = getenv("UVM_NO_SECCOMP");
	const char *log = getenv("UVM_SECCOMP_LOG");

	sandbox_setting = SANDBOX_KILL;
	if (log && !strcmp(log, "trap"))
		sandbox_setting = SANDBOX_TRAP;
	else if (log && *log && strcmp(log, "0"))
		sandbox_setting = SANDBOX_LOG;
	if (disable || (off && *off && strcmp(off, "0")))
		sandbox_setting = SANDBOX_OFF;
	if (sandbox_setting == SANDBOX_TRAP) {
		struct sigaction sa = {.sa_sigaction = sandbox_sigsys,
				       .sa_flags = SA_SIGINFO | SA_RESETHAND};

		sigemptyset(&sa.sa_mask);
		sigaction(SIGSYS, &sa, NULL);
	}
	if (sandbox_setting == SANDBOX_OFF)
		pr_warn(TAG, "the sandbox is off: no syscall filter, capabilities kept");
	else if (sandbox_setting != SANDBOX_KILL)
		pr_warn(TAG, "debugging mode (UVM_SECCOMP_LOG=%s): calls outside the allowlists %s",
			log,
			sandbox_setting == SANDBOX_LOG ? "run and are logged by the kernel"
						       : "are named on stderr, then kill");
}

static int add_rules(scmp_filter_ctx ctx, const struct sandbox_rule *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct scmp_arg_cmp arg = r[i].arg[0];
		int ret;

		if (r[i].self_pid)
			arg.datum_a = (scmp_datum_t)getpid();
		ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, r[i].nr, r[i].nargs,
					     r[i].nargs ? &arg : NULL);

		/* -EEXIST: the same unconditional rule twice (the ASan list repeats some). */
		if (ret && ret != -EEXIST) {
			char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, r[i].nr);

			pr_err(TAG, "cannot add the rule for %s: %s", name ? name : "?",
			       strerror(-ret));
			free(name);
			return ret;
		}
	}
	return 0;
}

/* The class's rules in a new libseccomp context (act is not SANDBOX_OFF). */
static int sandbox_build(enum sandbox_class cls, enum sandbox_action act, scmp_filter_ctx *out)
{
	uint32_t def;
	scmp_filter_ctx ctx;
	int ret;

	*out = NULL;
	switch (act) {
	case SANDBOX_LOG:
		def = SCMP_ACT_LOG;
		break;
	case SANDBOX_TRAP:
		def = SCMP_ACT_TRAP;
		break;
	default:
		def = SCMP_ACT_KILL_PROCESS;
		break;
	}
	if ((unsigned)cls >= SANDBOX_NR_CLASSES)
		return -EINVAL;
	ctx = seccomp_init(def);
	if (!ctx)
		return -ENOMEM;
	/* A foreign-arch syscall (int 0x80, x32) is never allowed. */
	ret = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (!ret)
		ret = add_rules(ctx, thread_rules, sizeof(thread_rules) / sizeof(thread_rules[0]));
	if (!ret && (cls == SANDBOX_VCPU || cls == SANDBOX_LOOP))
		ret = add_rules(ctx, vcpu_rules, sizeof(vcpu_rules) / sizeof(vcpu_rules[0]));
	if (!ret && cls == SANDBOX_OPENER)
		ret = add_rules(ctx, opener_rules, sizeof(opener_rules) / sizeof(opener_rules[0]));
	if (!ret && cls == SANDBOX_MOUNTER)
		ret =
		    add_rules(ctx, mounter_rules, sizeof(mounter_rules) / sizeof(mounter_rules[0]));
	if (!ret && (cls == SANDBOX_P9 || cls == SANDBOX_P9_SPAWN))
		ret = add_rules(ctx, p9_rules, sizeof(p9_rules) / sizeof(p9_rules[0]));
	if (!ret && cls == SANDBOX_P9_SPAWN)
		ret = add_rules(ctx, p9_spawn_rules,
				sizeof(p9_spawn_rules) / sizeof(p9_spawn_rules[0]));
	/* glibc tries clone3 first and falls back to clone, whose flags the rule above checks. */
	if (!ret && cls == SANDBOX_P9_SPAWN)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (!ret && cls == SANDBOX_LOOP)
		ret = add_rules(ctx, loop_rules, sizeof(loop_rules) / sizeof(loop_rules[0]));
	if (!ret && cls == SANDBOX_IO)
		ret = add_rules(ctx, io_rules, sizeof(io_rules) / sizeof(io_rules[0]));
#ifdef SANDBOX_ASAN
	if (!ret)
		ret = add_rules(ctx, asan_rules, sizeof(asan_rules) / sizeof(asan_rules[0]));
#endif
	if (ret) {
		seccomp_release(ctx);
		return ret;
	}
	*out = ctx;
	return 0;
}

/*
 * Filters compiled once (sandbox_prepare), on the thread that builds the VM:
 * a vCPU then installs its program with one seccomp() call before its first
 * KVM_RUN instead of building it (about 0.3-0.4 ms of CPU and a malloc arena
 * per vCPU thread; docs/vmm.md "Overhead"). Keyed by the pid, which the
 * tgkill rules embed: a forked child builds its own.
 */
struct sandbox_prog {
	pid_t pid;
	enum sandbox_action act;
	struct sock_fprog prog;
};

static struct sandbox_prog prepared[SANDBOX_NR_CLASSES];

static int sandbox_install(const struct sandbox_prog *p)
{
	/* What seccomp_load does with its default attributes: no_new_privs, then the filter. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p->prog) < 0)
		return -errno;
	return 0;
}

int sandbox_prepare(enum sandbox_class cls)
{
	struct sandbox_prog *p;
	scmp_filter_ctx ctx;
	struct sock_filter *insns = NULL;
	off_t size;
	int fd, ret;

	if ((unsigned)cls >= SANDBOX_NR_CLASSES)
		return -EINVAL;
	if (sandbox_setting == SANDBOX_OFF)
		return 0;
	p = &prepared[cls];
	ret = sandbox_build(cls, sandbox_setting, &ctx);
	if (ret)
		return ret;
	if (cls != SANDBOX_P9)
		tzset(); /* as sandbox_apply_action does: before openat goes */
	fd = memfd_create("uvm-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	ret = seccomp_export_bpf(ctx, fd);
	if (ret)
		goto out;
	size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % sizeof(*insns) || size / sizeof(*insns) > BPF_MAXINSNS) {
		ret = -EINVAL;
		goto out;
	}
	insns = malloc(size);
	if (!insns) {
		ret = -ENOMEM;
		goto out;
	}
	if (pread(fd, insns, size, 0) != size) {
		ret = -EIO;
		goto out;
	}
	free(p->prog.filter);
	*p = (struct sandbox_prog){.pid = getpid(),
				   .act = sandbox_setting,
				   .prog = {.len = size / sizeof(*insns), .filter = insns}};
	insns = NULL;
	pr_dbg(TAG, "%s filter compiled: %zu instructions", sandbox_class_name(cls),
	       (size_t)p->prog.len);
out:
	if (ret)
		pr_err(TAG, "cannot compile the %s filter: %s", sandbox_class_name(cls),
		       strerror(-ret));
	free(insns);
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return ret;
}

int sandbox_apply_action(enum sandbox_class cls, enum sandbox_action act)
{
	scmp_filter_ctx ctx;
	int ret;

	if (act == SANDBOX_OFF)
		return 0;
	if ((unsigned)cls >= SANDBOX_NR_CLASSES)
		return -EINVAL;
	if (prepared[cls].prog.filter && prepared[cls].act == act &&
	    prepared[cls].pid == getpid()) {
		ret = sandbox_install(&prepared[cls]);
		if (ret)
			pr_err(TAG, "cannot install the %s filter: %s", sandbox_class_name(cls),
			       strerror(-ret));
		else
			pr_dbg(TAG, "%s filter installed (prepared)", sandbox_class_name(cls));
		return ret;
	}
	ret = sandbox_build(cls, act, &ctx);
	if (ret)
		return ret;
	/*
	 * cmos_access (vmm/cmos.c) converts the host time with gmtime_r, and glibc
	 * reads /etc/localtime the first time any time conversion runs: do that
	 * now, while openat is still allowed (the vCPU list does not have it).
	 * Not for the 9p workers: they convert no time, and the four of them
	 * starting at once would race inside glibc's tzset (TSan).
	 */
	if (cls == SANDBOX_VCPU || cls == SANDBOX_LOOP || cls == SANDBOX_IO)
		tzset();
	/* Sets no_new_privs for this thread too, which an unprivileged load needs. */
	if (!ret)
		ret = seccomp_load(ctx);
	if (ret)
		pr_err(TAG, "cannot install the %s filter: %s", sandbox_class_name(cls),
		       strerror(-ret));
	else
		pr_dbg(TAG, "%s filter installed", sandbox_class_name(cls));
	seccomp_release(ctx);
	return ret;
}

int sandbox_apply(enum sandbox_class cls)
{
	return sandbox_apply_action(cls, sandbox_setting);
}

int sandbox_vcpu_hook(void *opaque, int vcpu_id)
{
	(void)opaque;
	(void)vcpu_id;
	return sandbox_apply(SANDBOX_VCPU);
}
