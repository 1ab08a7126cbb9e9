/*
 * The sandbox: one seccomp allowlist per thread class (libseccomp) and the
 * privilege drop (libcap-ng, PR_SET_NO_NEW_PRIVS). See docs/seccomp.md.
 *
 * THE RULE: a new syscall (or ioctl number, or socket family...) on a thread
 * class gets a line in that class's allowlist in seccomp/filter.c, with its
 * reason: the code path that needs it. Without that line the process dies
 * with SIGSYS the first time the path runs under the filter; UVM_SECCOMP_LOG=1
 * (log and allow) or UVM_SECCOMP_LOG=trap (name the call, then die) finds it.
 *
 * The prefix is sandbox_: libseccomp owns seccomp_*.
 *
 * Where the filters go (shim/machine.c, machine_start):
 *  - privileges are dropped on the thread that builds the VM, after it is
 *    built and before the vCPU threads exist, so every later thread inherits
 *    the drop (capabilities and no_new_privs are per thread);
 *  - each vCPU thread installs SANDBOX_VCPU right before its first KVM_RUN
 *    (vm_set_vcpu_hook);
 *  - each I/O thread installs SANDBOX_IO before its loop runs (made after
 *    the privilege drop and inside the Landlock domain);
 *  - the event-loop thread installs SANDBOX_LOOP once the vCPUs run;
 *  - the 9p spawner (made with the machine, before any of the above) keeps
 *    only the file-ownership capabilities a share needs and installs
 *    SANDBOX_P9_SPAWN (sandbox_p9_spawner); the workers it makes for each
 *    share, when the share is added, Landlock themselves beneath that share's
 *    root and install SANDBOX_P9 before they serve anything
 *    (sandbox_p9_worker).
 * Seccomp filters are per thread and inherited by threads created later; the
 * vCPU list is kept a subset of the loop list so that stacking them (a vCPU
 * created by a filtered loop) never forbids more than the vCPU list says.
 */
#ifndef SECCOMP_SECCOMP_H
#define SECCOMP_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sandbox_class {
	SANDBOX_VCPU,	  /* KVM_RUN and the exits dispatched to the PIO/MMIO buses */
	SANDBOX_LOOP,	  /* the event loop: control protocol, devices, vsock, hot-plug */
	SANDBOX_P9,	  /* 9p workers: file I/O beneath a share, nothing else */
	SANDBOX_P9_SPAWN, /* the 9p spawner: the 9p list plus making a share's workers */
	SANDBOX_OPENER,	  /* the opener process (shim/opener.h): opens and passes fds */
	SANDBOX_IO,	  /* I/O threads (vmm/io_thread.h): block devices' rings and io_uring */
	SANDBOX_MOUNTER,  /* the mounter process (shim/mounter.h): pod containers' rootfs mounts */
	SANDBOX_NR_CLASSES,
};

/* What a call outside the allowlist does. */
enum sandbox_action {
	SANDBOX_OFF,  /* no filter, no privilege drop (--no-seccomp, UVM_NO_SECCOMP=1) */
	SANDBOX_KILL, /* production: the whole process dies with SIGSYS */
	SANDBOX_LOG,  /* UVM_SECCOMP_LOG=1: the call runs, the kernel logs it (audit) */
	SANDBOX_TRAP, /* UVM_SECCOMP_LOG=trap: stderr names the call, then SIGSYS */
};

/*
 * Process-wide setting; call once from the main thread before any thread
 * starts. disable comes from --no-seccomp; the environment can also turn it
 * off (UVM_NO_SECCOMP=1) or into a debugging mode (UVM_SECCOMP_LOG).
 */
void sandbox_configure(bool disable);
enum sandbox_action sandbox_mode(void);
const char *sandbox_class_name(enum sandbox_class cls);

/* Installs the class's filter on the calling thread (no-op when off). */
int sandbox_apply(enum sandbox_class cls) __attribute__((warn_unused_result));
/* Same with an explicit action, whatever the process setting (tests). */
int sandbox_apply_action(enum sandbox_class cls, enum sandbox_action act)
    __attribute__((warn_unused_result));
/*
 * Compiles the class's filter now, for the process setting, so that later
 * sandbox_apply calls for it install the program without building it (one
 * seccomp() call; no libseccomp allocation on the applying thread). Call on
 * an unfiltered thread, before the threads that apply it start. No-op when
 * the sandbox is off.
 */
int sandbox_prepare(enum sandbox_class cls) __attribute__((warn_unused_result));
/* vm_set_vcpu_hook callback: SANDBOX_VCPU on the calling vCPU thread. */
int sandbox_vcpu_hook(void *opaque, int vcpu_id);

/*
 * Sets no_new_privs and, when the thread has capabilities (root), drops all
 * of them: effective, permitted, inheritable, ambient and the bounding set.
 * No-op when the sandbox is off.
 */
int sandbox_drop_privileges(void) __attribute__((warn_unused_result));

/*
 * The mounter process (shim/mounter.h): no_new_privs, every capability but
 * CAP_SYS_ADMIN and the file ones overlayfs uses on its layers (caps.c)
 * dropped, then its filter (SANDBOX_MOUNTER). No-op when off.
 */
int sandbox_mounter(void) __attribute__((warn_unused_result));
/*
 * The 9p spawner (virtio/p9_spawn.c), on its own thread: no_new_privs, every
 * capability dropped but CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
 * CAP_FOWNER and CAP_FSETID (a guest's root manages files of any owner
 * beneath its share, as with QEMU's passthrough model), the SANDBOX_P9
 * program compiled for the workers, then SANDBOX_P9_SPAWN. Its threads
 * inherit all of it.
 */
int sandbox_p9_spawner(void) __attribute__((warn_unused_result));

/*
 * A 9p worker of one share, on a thread the spawner made: a read-only share's
 * worker keeps CAP_DAC_READ_SEARCH alone; then Landlock beneath root_fd (the
 * share's root: everything but execute and device nodes, or only read for a
 * read-only share; skipped when the kernel has no Landlock); then SANDBOX_P9.
 * On the calling thread only.
 */
int sandbox_p9_worker(int root_fd, bool read_only) __attribute__((warn_unused_result));

/*
 * Landlock on the calling thread and the threads it creates later (seccomp/
 * landlock.c): no file may be opened by path, made or removed but /proc
 * (read), the ELF files mapped (read) and /dev/net/tun. Files named later come
 * from the opener (shim/opener.h). Without Landlock in the kernel a warning
 * says so and 0 is returned. No-op when the sandbox is off.
 */
int sandbox_landlock(void) __attribute__((warn_unused_result));
/*
 * Landlock on the calling thread only: no file may be opened, made or removed
 * but beneath root_fd (read and list only when read_only). 0, 1 when the
 * kernel has no Landlock (nothing done), or -errno.
 */
int sandbox_landlock_beneath(int root_fd, bool read_only) __attribute__((warn_unused_result));
/* The kernel's Landlock ABI version, or -errno (-ENOSYS, -EOPNOTSUPP: none). */
int sandbox_landlock_abi(void);

#endif
