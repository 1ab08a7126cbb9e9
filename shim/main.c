/* uvm-shim: one process, one VM. Command dispatch. */
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_serve.h"
#include "run.h"
#include "task.h"
#include "vmm/kvm.h"
#include "vmm/log.h"
#include "vmm/overhead.h"
#include "vmm/thread.h"

#ifndef UVM_VERSION
#define UVM_VERSION "0.1.0"
#endif

static const char usage[] =
    "usage: uvm-shim COMMAND [options]\n"
    "\n"
    "uvm-shim boots one Linux guest on KVM and serves its parent over stdin/stdout.\n"
    "\n"
    "commands:\n"
    "  run [options] [-- CMD...]  boot a guest: its console on this terminal, or CMD run\n"
    "                             in it with this terminal attached\n"
    "  serve [--no-seccomp]       speak the control protocol on stdin/stdout (docs/protocol.md)\n"
    "  containerd-shim FLAGS start|delete\n"
    "                             containerd's runtime v2 shim (also as a link named\n"
    "                             containerd-shim-uvm-v1; docs/containerd.md)\n"
    "  check                      report what this host's KVM offers (and whether it is PVM)\n"
    "  version                    print the version\n"
    "  help                       this text\n"
    "\n"
    "environment:\n"
    "  UVM_LOG=warn|info|debug    log level (default info; logs go to stderr)\n"
    "  UVM_GUEST_DIR=DIR          the default guest's kernel and initrd (default: build/guest)\n"
    "  UVM_NO_SECCOMP=1           no seccomp filters (docs/seccomp.md)\n"
    "  UVM_BLK_POLL_US=N          poll disk queues N us after a kick (default 200, 0 off;\n"
    "                             docs/virtio.md)\n"
    "\n"
    "`uvm-shim run --help` lists the run options.\n";

int main(int argc, char **argv)
{
	const char *lvl = getenv("UVM_LOG");

	overhead_mark("main");
	thread_heap_configure();
	if (lvl && strcmp(lvl, "debug") == 0)
		log_threshold = LOG_DEBUG;
	else if (lvl && strcmp(lvl, "warn") == 0)
		log_threshold = LOG_WARN;
	pthread_setname_np(pthread_self(), "main");

	/* containerd's runtime v2 shim: a link named containerd-shim-uvm-v1 (docs/containerd.md). */
	{
		const char *base = strrchr(argv[0], '/');

		base = base ? base + 1 : argv[0];
		if (!strncmp(base, "containerd-shim-", 16))
			return task_shim_main(argc, argv);
	}

	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("uvm-shim %s\n", UVM_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "check"))
		return kvm_report(stdout);
	if (!strcmp(argv[1], "serve"))
		return ctl_serve_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "run"))
		return run_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "containerd-shim"))
		return task_shim_main(argc - 1, argv + 1);
	fprintf(stderr, "uvm-shim: unknown command '%s'\n\n%s", argv[1], usage);
	return 2;
}
