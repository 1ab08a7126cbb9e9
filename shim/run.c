/*
 * `uvm-shim run`: the VM's whole life on one terminal. Without a command the
 * serial console is the terminal; with `-- CMD` the guest agent runs CMD
 * with our stdio (run_guest.c) and the console moves to stderr.
 */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "boot/boot.h"
#include "bridge.h"
#include "console.h"
#include "machine.h"
#include "plan9.h"
#include "nic.h"
#include "run_guest.h"
#include "run_opts.h"
#include "run_spec.h"
#include "seccomp/seccomp.h"
#include "shim/opener.h"
#include "vmm/kvm.h"
#include "vmm/legacy.h"
#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/vm.h"

#define CTRL_A 0x01

struct run_ctx {
	struct machine *m;
	struct vm *vm;
	struct loop *loop;
	struct uart *uart;
	struct console_sink console;
	struct console_watch watch;
	const struct run_opts *o;
	struct run_guest *guest; /* `run -- CMD`: exit with CMD's status */
	struct nic_mgr *nics;	 /* --net */
	bool escape;		 /* the previous stdin byte was Ctrl-A */
	struct run_tty tty;
	int sig_fd;
	int signo; /* the signal that ended the VM, if any */
	struct plan9 *shares; /* --share, or NULL */
};

/* --share: cold-plugged 9p shares named share0, share1 ..., mounted before CMD runs. */
static int run_add_shares(struct run_ctx *ctx, const struct run_opts *o)
{
	char err[256];
	int ret;

	ctx->shares = calloc(1, sizeof(*ctx->shares));
	if (!ctx->shares)
		return -ENOMEM;
	plan9_init(ctx->shares);
	ret = plan9_bind(ctx->shares, ctx->m->pci, vm_mem(ctx->vm), ctx->loop, ctx->m->io);
	if (ret) {
		fprintf(stderr, "uvm-shim run: 9p workers: %s\n", strerror(-ret));
		return ret;
	}
	for (int i = 0; i < o->nr_shares; i++) {
		char name[16];
		struct plan9_params p = {.name = name,
					 .host_path = o->shares[i].host,
					 .guest_path = o->shares[i].guest,
					 .read_only = o->shares[i].read_only,
					 .timeout_ms = PLAN9_DEFAULT_TIMEOUT};

		snprintf(name, sizeof(name), "share%d", i);
		ret = plan9_attach_cold(ctx->shares, &p, err, sizeof(err));
		if (ret) {
			fprintf(stderr, "uvm-shim run: --share %s:%s: %s\n", p.host_path,
				p.guest_path, err);
			return ret;
		}
	}
	if (o->rootfs) {
		struct plan9_params p = {.name = RUN_ROOTFS_SHARE,
					 .host_path = o->rootfs,
					 .guest_path = RUN_ROOTFS_GUEST,
					 .read_only = true,
					 .timeout_ms = PLAN9_DEFAULT_TIMEOUT};
		struct stat st;

		if (stat(o->rootfs, &st) < 0) {
			fprintf(stderr, "uvm-shim run: --rootfs %s: %s\n", o->rootfs,
				strerror(errno));
			return -EINVAL;
		}
		if (!S_ISDIR(st.st_mode)) {
			fprintf(stderr, "uvm-shim run: --rootfs %s: not a directory\n", o->rootfs);
			return -EINVAL;
		}
		ret = plan9_attach_cold(ctx->shares, &p, err, sizeof(err));
		if (ret) {
			fprintf(stderr, "uvm-shim run: --rootfs %s: %s\n", o->rootfs, err);
			return ret;
		}
	}
	return 0;
}

/* Guest console bytes, on a vCPU thread. */
static void run_console_out(void *opaque, const uint8_t *buf, size_t len)
{
	struct run_ctx *ctx = opaque;

	console_watch_feed(&ctx->watch, ctx->vm, buf, len);
	console_sink_write(&ctx->console, buf, len);
}

static void run_on_stdin(void *opaque, uint32_t events)
{
	struct run_ctx *ctx = opaque;
	uint8_t buf[256], fwd[256];
	size_t nf = 0;
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	(void)events;
	if (n <= 0) {
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		loop_del(ctx->loop, STDIN_FILENO); /* EOF: the guest keeps running */
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (ctx->tty.raw && ctx->escape) {
			ctx->escape = false;
			if (buf[i] == 'x') {
				vm_request_exit(ctx->vm, VM_EXIT_TERMINATED);
				return;
			}
			if (buf[i] != CTRL_A)
				fwd[nf++] = CTRL_A;
			fwd[nf++] = buf[i];
		} else if (ctx->tty.raw && buf[i] == CTRL_A) {
			ctx->escape = true;
		} else {
			fwd[nf++] = buf[i];
		}
	}
	if (nf && uart_input(ctx->uart, fwd, nf) < nf)
		log_ratelimited(LOG_WARN, "console",
				"guest is not reading its console; input dropped");
}

static void run_on_exit(void *opaque, uint32_t events)
{
	struct run_ctx *ctx = opaque;

	(void)events;
	loop_stop(ctx->loop);
}

static void run_on_signal(void *opaque, uint32_t events)
{
	struct run_ctx *ctx = opaque;
	struct signalfd_siginfo si;
	int signo;

	(void)events;
	if (read(ctx->sig_fd, &si, sizeof(si)) != sizeof(si))
		return;
	signo = (int)si.ssi_signo;
	if (signo == SIGWINCH) {
		if (ctx->guest)
			run_guest_winch(ctx->guest);
		return;
	}
	/* With a command, the first one is the command's (as a shell would pass it on). */
	if (ctx->guest && run_guest_forward_signal(ctx->guest, signo))
		return;
	pr_info("run", "signal %d: terminating the VM", signo);
	if (!ctx->signo)
		ctx->signo = signo;
	vm_request_exit(ctx->vm, VM_EXIT_TERMINATED);
}

void run_tty_raw(struct run_tty *t, int fd, bool keep_opost)
{
	struct termios r;

	if (t->raw || !isatty(fd) || tcgetattr(fd, &t->saved) < 0)
		return;
	r = t->saved;
	cfmakeraw(&r);
	if (keep_opost)
		r.c_oflag |= OPOST | ONLCR; /* host-side newlines stay sane for our own messages */
	if (tcsetattr(fd, TCSANOW, &r) == 0) {
		t->raw = true;
		t->fd = fd;
	}
}

void run_tty_restore(struct run_tty *t)
{
	if (t->raw)
		tcsetattr(t->fd, TCSANOW, &t->saved);
	t->raw = false;
}

/* Kernel command line: base, user extras, then the agent's bridge when a command is given. */
char *run_build_cmdline(const struct run_opts *o)
{
	size_t cap = BOOT_CMDLINE_MAX + 1;
	char *s = malloc(cap);

	if (!s)
		return NULL;
	if (machine_cmdline(s, cap, o->cmdline, o->guest_argc > 0)) {
		fprintf(
		    stderr,
		    "uvm-shim run: the kernel command line would be over the limit of %d bytes\n",
		    BOOT_CMDLINE_MAX);
		free(s);
		return NULL;
	}
	return s;
}

/* --net: plug the NICs (the agent configures them before CMD runs). */
static int run_add_nics(struct run_ctx *ctx, const struct run_opts *o)
{
	char err[256];

	ctx->nics = calloc(1, sizeof(*ctx->nics));
	if (!ctx->nics)
		return -ENOMEM;
	nic_init(ctx->nics);
	nic_bind(ctx->nics, ctx->m->pci, vm_mem(ctx->vm), ctx->loop, ctx->m->io);
	for (int i = 0; i < o->nr_nets; i++) {
		struct nic_params p;
		cJSON *j;
		int ret, code;

		if (run_net_params(o->nets[i], i, &j, err, sizeof(err)) ||
		    nic_parse_add(j, &p, err)) {
			fprintf(stderr, "uvm-shim run: %s\n", err);
			cJSON_Delete(j);
			return -EINVAL;
		}
		ret = nic_attach_cold(ctx->nics, &p, err, sizeof(err), &code);
		nic_params_free(&p);
		cJSON_Delete(j);
		if (ret) {
			fprintf(stderr, "uvm-shim run: --net %s: %s\n", o->nets[i], err);
			return ret;
		}
	}
	if (!o->guest_argc)
		pr_warn("run", "--net without -- CMD: the NICs are plugged but nothing configures "
			       "them in the guest");
	return 0;
}

/* With a command: its status, unless the guest crashed or never told it. */
static int run_guest_exit_status(struct run_ctx *ctx, enum vm_exit why)
{
	const char *cmd = ctx->o->guest_argv[0];
	int status;

	if (why == VM_EXIT_PANIC || why == VM_EXIT_TRIPLE_FAULT) {
		pr_err("run", "VM ended: %s%s%s", vm_exit_name(why),
		       why == VM_EXIT_PANIC && ctx->watch.panic_msg[0] ? ": " : "",
		       why == VM_EXIT_PANIC ? ctx->watch.panic_msg : "");
		return RUN_EXIT_GUEST;
	}
	if (run_guest_status(ctx->guest, &status)) {
		pr_info("run", "VM ended: %s; %s exited %d", vm_exit_name(why), cmd, status);
		return status;
	}
	if (ctx->signo) {
		pr_info("run", "VM ended: %s (signal %d)", vm_exit_name(why), ctx->signo);
		return 128 + ctx->signo;
	}
	if (why == VM_EXIT_ERROR) {
		pr_err("run", "VM ended: %s", vm_exit_name(why));
		return RUN_EXIT_VMM;
	}
	pr_err("run", "VM ended (%s) before %s's exit status was known", vm_exit_name(why), cmd);
	return RUN_EXIT_GUEST;
}

static int run_exit_status(struct run_ctx *ctx)
{
	enum vm_exit why = vm_exit_reason(ctx->vm);

	if (why == VM_EXIT_RESET && ctx->watch.panic_seen)
		why = VM_EXIT_PANIC;
	if (ctx->guest)
		return run_guest_exit_status(ctx, why);
	if (why == VM_EXIT_TERMINATED && ctx->signo) {
		pr_info("run", "VM ended: %s (signal %d)", vm_exit_name(why), ctx->signo);
		return 128 + ctx->signo;
	}
	switch (why) {
	case VM_EXIT_RESET:
	case VM_EXIT_POWEROFF:
	case VM_EXIT_TERMINATED:
		pr_info("run", "VM ended: %s", vm_exit_name(why));
		return RUN_EXIT_OK;
	case VM_EXIT_PANIC:
		pr_err("run", "VM ended: %s%s%s", vm_exit_name(why),
		       ctx->watch.panic_msg[0] ? ": " : "", ctx->watch.panic_msg);
		return RUN_EXIT_GUEST;
	case VM_EXIT_TRIPLE_FAULT:
		pr_err("run", "VM ended: %s", vm_exit_name(why));
		return RUN_EXIT_GUEST;
	default:
		pr_err("run", "VM ended: %s", vm_exit_name(why));
		return RUN_EXIT_VMM;
	}
}

static int run_open_console(struct run_ctx *ctx, const struct run_opts *o)
{
	int ret;

	console_sink_fd(&ctx->console, -1);
	if (o->console == CONSOLE_STDIO) {
		console_sink_fd(&ctx->console, STDOUT_FILENO);
	} else if (o->console == CONSOLE_STDERR) {
		console_sink_fd(&ctx->console, STDERR_FILENO);
	} else if (o->console == CONSOLE_FILE) {
		ret = console_sink_open(&ctx->console, o->console_path);
		if (ret) {
			fprintf(stderr, "uvm-shim run: cannot open console file '%s': %s\n",
				o->console_path,
				ret == -ELOOP	 ? "it is a symbolic link"
				: ret == -EINVAL ? "not a regular file, FIFO or character device"
						 : strerror(-ret));
			return ret;
		}
	}
	return 0;
}

int run_main(int argc, char **argv)
{
	char err[512], kpath[PATH_MAX], ipath[PATH_MAX];
	struct run_ctx ctx = {.console = {.fd = -1}, .sig_fd = -1};
	struct machine_config *mc = NULL;
	struct run_opts *o;
	char *cmdline = NULL;
	int status = RUN_EXIT_VMM, ret;
	sigset_t sigs;

	o = calloc(1, sizeof(*o));
	mc = calloc(1, sizeof(*mc));
	if (!o || !mc)
		goto out;
	if (run_opts_parse(o, argc, argv, err, sizeof(err))) {
		fprintf(stderr, "uvm-shim run: %s\n", err);
		status = RUN_EXIT_USAGE;
		goto out;
	}
	if (o->help) {
		fputs(run_usage, stdout);
		status = RUN_EXIT_OK;
		goto out;
	}
	ctx.o = o;
	sandbox_configure(o->no_seccomp); /* applied by machine_start */
	/* Forked now, while the process holds nothing else (shim/opener.h). */
	if (opener_start()) {
		fprintf(stderr, "uvm-shim run: cannot start the opener process\n");
		status = RUN_EXIT_USAGE;
		goto out;
	}
	if (!o->kernel) {
		if ((o->firmware ? machine_default_guest_efi : machine_default_guest)(
			machine_guest_dir(), kpath, sizeof(kpath), ipath, sizeof(ipath))) {
			fprintf(
			    stderr,
			    "uvm-shim run: no --kernel given and the default guest is not built "
			    "(%s): run `make guest` or set UVM_GUEST_DIR\n",
			    kpath);
			status = RUN_EXIT_USAGE;
			goto out;
		}
		o->kernel = kpath;
		o->initrd = ipath;
	}
	cmdline = run_build_cmdline(o);
	if (!cmdline) {
		status = RUN_EXIT_USAGE;
		goto out;
	}

	/* Signals arrive through a signalfd on the loop; vCPU threads inherit the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	/* Not a keyboard signal here (raw terminal): from kill, it ends us cleanly, tty restored.
	 */
	sigaddset(&sigs, SIGQUIT);
	/* The terminal's size, for a command's pty (ignored otherwise, as by default). */
	sigaddset(&sigs, SIGWINCH);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	ctx.sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);

	if (kvm_is_pvm())
		pr_warn("run",
			"/dev/kvm is PVM (kvm_pvm): a kernel that is not built as a PVM "
			"guest is emulated instruction by instruction and will crawl; a stock "
			"Linux kernel never finishes booting here (use tests/testhost/run)");
	if (run_open_console(&ctx, o))
		goto out;
	ret = loop_create(&ctx.loop);
	if (ret) {
		fprintf(stderr, "uvm-shim run: cannot create the event loop: %s\n", strerror(-ret));
		goto out;
	}

	*mc = (struct machine_config){.cpus = o->cpus,
				      .mem_mib = o->mem_mib,
				      .io_threads = o->io_threads,
				      .kernel = o->kernel,
				      .initrd = o->initrd,
				      .cmdline = cmdline,
				      .entry16 = o->entry16,
				      .firmware = o->firmware,
				      .console_out = run_console_out,
				      .console_opaque = &ctx,
				      .nr_disks = o->nr_disks,
				      .nr_pmems = o->nr_pmems};
	for (int i = 0; i < o->nr_pmems; i++)
		mc->pmems[i] = (struct machine_pmem){.path = o->pmems[i].path,
						     .read_only = o->pmems[i].read_only};
	for (int i = 0; i < o->nr_disks; i++)
		mc->disks[i] = (struct machine_disk){.path = o->disks[i].path,
						     .read_only = o->disks[i].read_only,
						     .serial = o->disks[i].serial};
	ret = machine_create(&ctx.m, mc, ctx.loop, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "uvm-shim run: %s\n", err);
		if (ret == -EINVAL || ret == -ENOENT || ret == -ENOEXEC || ret == -E2BIG ||
		    ret == -EACCES)
			status = RUN_EXIT_USAGE;
		goto out;
	}
	ctx.vm = ctx.m->vm;
	ctx.uart = ctx.m->uart;
	if (o->nr_nets && run_add_nics(&ctx, o))
		goto out;
	if (o->guest_argc) {
		bool tty = o->tty == RUN_TTY_ON || (o->tty == RUN_TTY_AUTO && isatty(STDIN_FILENO));
		struct run_guest_config gc = {.argv = o->guest_argv,
					      .argc = o->guest_argc,
					      .tty = tty,
					      .raw = tty ? &ctx.tty : NULL,
					      .nics = ctx.nics,
					      .rootfs = o->rootfs ? RUN_ROOTFS_GUEST : NULL};

		if (o->nr_shares || o->rootfs) {
			ret = run_add_shares(&ctx, o);
			if (ret) {
				status = RUN_EXIT_USAGE;
				goto out;
			}
			gc.shares = ctx.shares;
		}

		/* A terminal session is CMD's screen: our info lines only when asked (UVM_LOG). */
		if (tty && !getenv("UVM_LOG"))
			log_threshold = LOG_WARN;
		ret = run_guest_create(&ctx.guest, ctx.m, ctx.loop, &gc, err, sizeof(err));
		if (ret) {
			fprintf(stderr, "uvm-shim run: %s\n", err);
			goto out;
		}
	}

	if (loop_add(ctx.loop, vm_exit_fd(ctx.vm), EPOLLIN, run_on_exit, &ctx) ||
	    (ctx.sig_fd >= 0 && loop_add(ctx.loop, ctx.sig_fd, EPOLLIN, run_on_signal, &ctx))) {
		fprintf(stderr, "uvm-shim run: event loop setup failed\n");
		goto out;
	}
	if (o->console == CONSOLE_STDIO && !ctx.guest) {
		run_tty_raw(&ctx.tty, STDIN_FILENO, true);
		if (loop_add(ctx.loop, STDIN_FILENO, EPOLLIN, run_on_stdin, &ctx))
			pr_dbg("run", "stdin cannot be polled; console input disabled");
	}
	if (machine_start(ctx.m))
		goto out;
	loop_run(ctx.loop);
	vm_request_exit(ctx.vm, VM_EXIT_TERMINATED); /* no-op when the guest ended it */
	vm_join(ctx.vm);
	run_tty_restore(&ctx.tty);
	status = run_exit_status(&ctx);
out:
	run_tty_restore(&ctx.tty);
	if (ctx.m) {
		/* The vsock device goes before the machine, with the vCPUs stopped. */
		vm_request_exit(ctx.m->vm, VM_EXIT_TERMINATED);
		vm_join(ctx.m->vm);
	}
	run_guest_destroy(ctx.guest);
	if (ctx.shares)
		plan9_unbind(ctx.shares); /* before the bus goes */
	free(ctx.shares);
	if (ctx.nics)
		nic_unbind(ctx.nics); /* before the bus goes */
	free(ctx.nics);
	machine_destroy(ctx.m);
	loop_destroy(ctx.loop);
	console_sink_close(&ctx.console);
	if (ctx.sig_fd >= 0)
		close(ctx.sig_fd);
	free(cmdline);
	free(mc);
	free(o);
	return status;
}
