/* `uvm-shim run`: the VM's whole life on one terminal. */
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
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "boot/boot.h"
#include "console.h"
#include "run_opts.h"
#include "vmm/kvm.h"
#include "vmm/legacy.h"
#include "vmm/log.h"
#include "vmm/loop.h"
#include "vmm/vm.h"

#define RUN_BASE_CMDLINE                                                                           \
	"console=ttyS0 reboot=k panic=-1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd"
#define UART_PORT 0x3f8
#define CTRL_A	  0x01

struct mapped_file {
	const uint8_t *data;
	size_t size;
};

struct run_ctx {
	struct vm *vm;
	struct loop *loop;
	struct uart *uart;
	int out_fd;
	struct console_watch watch;
	bool panic_seen;
	bool escape; /* the previous stdin byte was Ctrl-A */
	bool tty_raw;
	struct termios saved_tty;
	int sig_fd;
};

static int map_file(const char *path, const char *what, struct mapped_file *mf)
{
	struct stat st;
	void *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	mf->data = NULL;
	mf->size = 0;
	if (fd < 0) {
		fprintf(stderr, "uvm-shim run: cannot open %s '%s': %s\n", what, path,
			strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "uvm-shim run: %s '%s' is not a regular file\n", what, path);
		close(fd);
		return -EINVAL;
	}
	if (st.st_size == 0) {
		fprintf(stderr, "uvm-shim run: %s '%s' is empty\n", what, path);
		close(fd);
		return -EINVAL;
	}
	p = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		fprintf(stderr, "uvm-shim run: cannot map %s '%s': %s\n", what, path,
			strerror(errno));
		return -errno;
	}
	mf->data = p;
	mf->size = st.st_size;
	return 0;
}

static void unmap_file(struct mapped_file *mf)
{
	if (mf->data)
		munmap((void *)mf->data, mf->size);
	mf->data = NULL;
}

const char *run_default_guest_dir(void)
{
	static char dir[PATH_MAX];
	char exe[PATH_MAX];
	const char *env = getenv("UVM_GUEST_DIR");
	ssize_t n;

	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	snprintf(dir, sizeof(dir), "%s/guest", dirname(exe));
	return dir;
}

/* Guest console bytes, on a vCPU thread. */
static void run_console_out(void *opaque, const uint8_t *buf, size_t len)
{
	struct run_ctx *ctx = opaque;

	for (size_t i = 0; i < len; i++) {
		switch (console_watch_byte(&ctx->watch, buf[i])) {
		case CONSOLE_EV_PANIC_BEGIN:
			ctx->panic_seen = true;
			break;
		case CONSOLE_EV_PANIC_END:
			ctx->panic_seen = true;
			vm_request_exit(ctx->vm, VM_EXIT_PANIC);
			break;
		case CONSOLE_EV_POWER_OFF:
			vm_request_exit(ctx->vm, VM_EXIT_POWEROFF);
			break;
		default:
			break;
		}
	}
	if (ctx->out_fd < 0)
		return;
	while (len) {
		ssize_t n = write(ctx->out_fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ctx->out_fd = -1; /* the reader went away; keep the guest running */
			return;
		}
		buf += n;
		len -= n;
	}
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
		if (ctx->tty_raw && ctx->escape) {
			ctx->escape = false;
			if (buf[i] == 'x') {
				vm_request_exit(ctx->vm, VM_EXIT_TERMINATED);
				return;
			}
			if (buf[i] != CTRL_A)
				fwd[nf++] = CTRL_A;
			fwd[nf++] = buf[i];
		} else if (ctx->tty_raw && buf[i] == CTRL_A) {
			ctx->escape = true;
		} else {
			fwd[nf++] = buf[i];
		}
	}
	if (nf && uart_input(ctx->uart, fwd, nf) < nf)
		log_ratelimited(LOG_WARN, "console", "guest is not reading its console; input dropped");
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

	(void)events;
	if (read(ctx->sig_fd, &si, sizeof(si)) != sizeof(si))
		return;
	pr_info("run", "signal %u: terminating the VM", si.ssi_signo);
	vm_request_exit(ctx->vm, VM_EXIT_TERMINATED);
}

static void run_tty_raw(struct run_ctx *ctx)
{
	struct termios t;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &ctx->saved_tty) < 0)
		return;
	t = ctx->saved_tty;
	cfmakeraw(&t);
	t.c_oflag |= OPOST | ONLCR; /* keep host-side newlines sane for our own messages */
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0)
		ctx->tty_raw = true;
}

static void run_tty_restore(struct run_ctx *ctx)
{
	if (ctx->tty_raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &ctx->saved_tty);
	ctx->tty_raw = false;
}

/* Kernel command line: base, user extras, then the guest command after "--". */
static char *run_build_cmdline(const struct run_opts *o)
{
	size_t cap = BOOT_CMDLINE_MAX + 2, len;
	char *s = malloc(cap);

	if (!s)
		return NULL;
	len = snprintf(s, cap, "%s%s%s", RUN_BASE_CMDLINE, o->cmdline ? " " : "",
		       o->cmdline ? o->cmdline : "");
	if (o->guest_argc)
		len += snprintf(s + (len < cap ? len : cap), len < cap ? cap - len : 0, " --");
	for (int i = 0; i < o->guest_argc; i++) {
		const char *a = o->guest_argv[i];
		bool quote = strpbrk(a, " \t") != NULL;

		if (strchr(a, '"')) {
			fprintf(stderr, "uvm-shim run: guest arguments cannot contain '\"'\n");
			free(s);
			return NULL;
		}
		len += snprintf(s + (len < cap ? len : cap), len < cap ? cap - len : 0,
				quote ? " \"%s\"" : " %s", a);
	}
	if (len > BOOT_CMDLINE_MAX) {
		fprintf(stderr, "uvm-shim run: kernel command line is %zu bytes, over the limit of %d\n",
			len, BOOT_CMDLINE_MAX);
		free(s);
		return NULL;
	}
	return s;
}

static int run_exit_status(struct run_ctx *ctx)
{
	enum vm_exit why = vm_exit_reason(ctx->vm);

	if (why == VM_EXIT_RESET && ctx->panic_seen)
		why = VM_EXIT_PANIC;
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
	ctx->out_fd = -1;
	if (o->console == CONSOLE_STDIO) {
		ctx->out_fd = STDOUT_FILENO;
	} else if (o->console == CONSOLE_FILE) {
		ctx->out_fd = open(o->console_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (ctx->out_fd < 0) {
			fprintf(stderr, "uvm-shim run: cannot open console file '%s': %s\n",
				o->console_path, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

int run_main(int argc, char **argv)
{
	char err[256], kpath[PATH_MAX], ipath[PATH_MAX];
	struct mapped_file kernel = {0}, initrd = {0};
	struct run_ctx ctx = {.out_fd = -1, .sig_fd = -1};
	struct i8042 *kbc = NULL;
	struct cmos *cmos = NULL;
	struct boot_regs regs;
	struct boot_input in;
	struct boot_ram ram;
	struct guest_mem *mem;
	struct run_opts *o;
	char *cmdline = NULL;
	int status = RUN_EXIT_VMM, ret;
	sigset_t sigs;

	o = calloc(1, sizeof(*o));
	if (!o)
		return RUN_EXIT_VMM;
	if (run_opts_parse(o, argc, argv, err, sizeof(err))) {
		fprintf(stderr, "uvm-shim run: %s\n", err);
		free(o);
		return RUN_EXIT_USAGE;
	}
	if (o->help) {
		fputs(run_usage, stdout);
		free(o);
		return RUN_EXIT_OK;
	}
	if (!o->kernel) {
		const char *dir = run_default_guest_dir();

		snprintf(kpath, sizeof(kpath), "%s/vmlinuz", dir ? dir : ".");
		snprintf(ipath, sizeof(ipath), "%s/initrd.img", dir ? dir : ".");
		if (access(kpath, R_OK) || access(ipath, R_OK)) {
			fprintf(stderr,
				"uvm-shim run: no --kernel given and the default guest is not built "
				"(%s): run `make guest` or set UVM_GUEST_DIR\n",
				kpath);
			free(o);
			return RUN_EXIT_USAGE;
		}
		o->kernel = kpath;
		o->initrd = ipath;
	}
	if (map_file(o->kernel, "kernel", &kernel) ||
	    (o->initrd && map_file(o->initrd, "initrd", &initrd))) {
		status = RUN_EXIT_USAGE;
		goto out;
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
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	ctx.sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);

	if (kvm_is_pvm())
		pr_warn("run", "/dev/kvm is PVM (kvm_pvm): a kernel that is not built as a PVM "
			       "guest is emulated instruction by instruction and will crawl; a stock "
			       "Linux kernel never finishes booting here (use tests/testhost/run)");

	ret = vm_create(&ctx.vm, &(struct vm_config){.nr_cpus = o->cpus, .mem_mib = o->mem_mib});
	if (ret) {
		fprintf(stderr, "uvm-shim run: cannot create the VM: %s\n", strerror(-ret));
		goto out;
	}
	mem = vm_mem(ctx.vm);
	ram = (struct boot_ram){.lo = mem->regions[0].hva,
				.lo_size = mem->regions[0].size,
				.hi_size = mem->nr_regions > 1 ? mem->regions[1].size : 0};
	in = (struct boot_input){.kernel = kernel.data,
				 .kernel_size = kernel.size,
				 .initrd = initrd.data,
				 .initrd_size = initrd.size,
				 .cmdline = cmdline,
				 .nr_cpus = o->cpus,
				 .entry = o->entry16 ? BOOT_ENTRY_REAL16 : BOOT_ENTRY_DEFAULT};
	ret = boot_load(&ram, &in, &regs, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "uvm-shim run: cannot load kernel '%s': %s\n", o->kernel, err);
		status = RUN_EXIT_USAGE;
		goto out;
	}
	unmap_file(&kernel);
	unmap_file(&initrd);

	if (run_open_console(&ctx, o))
		goto out;
	ret = uart_create(ctx.vm, UART_PORT, VM_IRQ_UART, run_console_out, &ctx, &ctx.uart);
	if (!ret)
		ret = i8042_create(ctx.vm, &kbc);
	if (!ret)
		ret = cmos_create(ctx.vm, &cmos);
	if (!ret)
		ret = vm_set_boot_regs(ctx.vm, &regs);
	if (!ret)
		ret = loop_create(&ctx.loop);
	if (ret) {
		fprintf(stderr, "uvm-shim run: VM setup failed: %s\n", strerror(-ret));
		goto out;
	}
	if (loop_add(ctx.loop, vm_exit_fd(ctx.vm), EPOLLIN, run_on_exit, &ctx) ||
	    (ctx.sig_fd >= 0 && loop_add(ctx.loop, ctx.sig_fd, EPOLLIN, run_on_signal, &ctx))) {
		fprintf(stderr, "uvm-shim run: event loop setup failed\n");
		goto out;
	}
	if (o->console == CONSOLE_STDIO) {
		run_tty_raw(&ctx);
		if (loop_add(ctx.loop, STDIN_FILENO, EPOLLIN, run_on_stdin, &ctx))
			pr_dbg("run", "stdin cannot be polled; console input disabled");
	}
	if (vm_start(ctx.vm))
		goto out;
	loop_run(ctx.loop);
	vm_request_exit(ctx.vm, VM_EXIT_TERMINATED); /* no-op when the guest ended it */
	vm_join(ctx.vm);
	run_tty_restore(&ctx);
	status = run_exit_status(&ctx);
out:
	run_tty_restore(&ctx);
	if (ctx.vm) {
		vm_request_exit(ctx.vm, VM_EXIT_TERMINATED);
		vm_join(ctx.vm);
	}
	uart_destroy(ctx.uart);
	i8042_destroy(kbc);
	cmos_destroy(cmos);
	vm_destroy(ctx.vm);
	loop_destroy(ctx.loop);
	if (ctx.out_fd > STDERR_FILENO)
		close(ctx.out_fd);
	if (ctx.sig_fd >= 0)
		close(ctx.sig_fd);
	unmap_file(&kernel);
	unmap_file(&initrd);
	free(cmdline);
	free(o);
	return status;
}
