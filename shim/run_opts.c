/* `uvm-shim run` option parsing. */
#include "run_opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "boot/boot.h"
#include "shim/nic.h"
#include "shim/uefi_params.h"
#include "vmm/io_thread.h"
#include "vmm/vm.h"

const char run_usage[] =
    "usage: uvm-shim run [options] [-- CMD [ARGS...]]\n"
    "Boots one Linux guest and shows its serial console, or runs CMD in it.\n"
    "\n"
    "  --kernel PATH       bzImage or ELF vmlinux with a PVH note (default: the default guest)\n"
    "  --initrd PATH       initial ramdisk (default: the default guest's, when --kernel is not "
    "given)\n"
    "  --firmware PATH     boot through UEFI firmware (Debian's /usr/share/ovmf/OVMF.fd):\n"
    "                      it starts the kernel (a bzImage with an EFI stub; default: the\n"
    "                      default guest's vmlinuz) from fw_cfg; at most 2816 MiB of memory\n"
    "  --efi-dir DIR, --efi-path REL [--efi-initrd REL] [--efi-args STR]\n"
    "                      with --firmware: the firmware starts DIR/REL (a kernel with an\n"
    "                      EFI stub), both resolved beneath DIR, with STR appended to the\n"
    "                      base command line (hcsshim's SetUEFIBoot form)\n"
    "  --cmdline STR       extra kernel command line, appended to the base\n"
    "                      (console=ttyS0 quiet reboot=k panic=-1, i8042 quirks);\n"
    "                      add loglevel=7 to see the kernel's boot messages\n"
    "  --cpus N            vCPUs, 1-64 (default 1)\n"
    "  --memory MiB        guest RAM, 16-1048576 MiB (default 512)\n"
    "  --io-threads N      I/O threads serving the disks, pmem devices, NICs and 9p\n"
    "                      shares' queues, each device on the least busy one (its\n"
    "                      own while one is idle), 1-8 (default 4)\n"
    "  --console KIND      stdio, stderr, file:PATH or none (default: stdio, or\n"
    "                      stderr when CMD is given)\n"
    "  --disk PATH[,ro][,serial=ID]  attach a virtio-blk disk (repeatable)\n"
    "  --pmem PATH[,ro]    attach a file as a virtio-pmem device, /dev/pmemN in the\n"
    "                      guest (repeatable; a multiple of 4 KiB, at most 4 GiB)\n"
    "  --share HOSTDIR:GUESTDIR[,ro]  share a host directory over 9p, mounted on GUESTDIR\n"
    "                      before CMD runs (repeatable; needs -- CMD)\n"
    "  --rootfs DIR        run CMD in a container whose root is DIR (shared read-only\n"
    "                      over 9p; its writes go to guest memory); needs -- CMD\n"
    "  --net user          a NIC on user-mode networking (passt; no root needed): the\n"
    "                      guest is 10.0.2.15/24, the host's loopback is 10.0.2.2\n"
    "  --net tap=NAME[,mac=MAC][,ip=CIDR][,gw=IP][,mtu=N]  a NIC on an existing tap\n"
    "                      (repeatable; the agent configures it, with -- CMD only)\n"
    "  --tty, --no-tty     with CMD: give it a pseudo-terminal in the guest, or pipes\n"
    "                      (default: a terminal when stdin is one)\n"
    "  --entry16           enter a bzImage through its 16-bit entry (tiny payloads only:\n"
    "                      there is no BIOS, so Linux's own setup code cannot run)\n"
    "  --no-seccomp        debugging: no syscall filters, capabilities kept\n"
    "                      (also UVM_NO_SECCOMP=1; see docs/seccomp.md)\n"
    "  -h, --help          this text\n"
    "\n"
    "Without CMD: stdin is the console's input; in an interactive terminal,\n"
    "Ctrl-A x ends the VM. Exit status: 0 when the guest reboots or powers off,\n"
    "1 on a VMM failure, 2 on bad usage, 3 when the guest crashes (kernel panic,\n"
    "triple fault), 128+N when signal N ended it.\n"
    "\n"
    "With -- CMD (the guest's /init must be uvm-gcs, as in the default guest):\n"
    "the agent runs CMD (no shell: write sh -c '...' for one) with uvm-shim's\n"
    "stdin, stdout and stderr; then the guest powers off and uvm-shim exits with\n"
    "CMD's status (128+N if signal N killed it, 127 if not found, 126 if it\n"
    "could not be executed), or 3 if the guest crashed or its agent failed first.\n"
    "A first SIGINT/SIGTERM/SIGHUP/SIGQUIT goes to CMD, a second ends the VM.\n"
    "See docs/run.md.\n";

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_disk(struct run_opts *o, const char *spec, char *err, size_t errlen)
{
	struct run_disk *d;
	char *buf, *tok, *save;

	if (o->nr_disks >= RUN_MAX_DISKS) {
		snprintf(err, errlen, "too many disks (at most %d)", RUN_MAX_DISKS);
		return -EINVAL;
	}
	buf = o->disk_buf[o->nr_disks];
	if (strlen(spec) >= sizeof(o->disk_buf[0])) {
		snprintf(err, errlen, "--disk argument too long");
		return -EINVAL;
	}
	strcpy(buf, spec);
	d = &o->disks[o->nr_disks];
	*d = (struct run_disk){0};
	tok = strtok_r(buf, ",", &save);
	if (!tok || !*tok || spec[0] == ',') {
		snprintf(err, errlen, "--disk needs a path: --disk PATH[,ro][,serial=ID]");
		return -EINVAL;
	}
	d->path = tok;
	while ((tok = strtok_r(NULL, ",", &save))) {
		if (strcmp(tok, "ro") == 0) {
			d->read_only = true;
		} else if (strncmp(tok, "serial=", 7) == 0) {
			d->serial = tok + 7;
			if (strlen(d->serial) > 20) {
				snprintf(err, errlen, "disk serial '%s' is longer than 20 bytes",
					 d->serial);
				return -EINVAL;
			}
		} else {
			snprintf(err, errlen, "unknown disk option '%s' (expected ro or serial=ID)",
				 tok);
			return -EINVAL;
		}
	}
	o->nr_disks++;
	return 0;
}

static int parse_pmem(struct run_opts *o, const char *spec, char *err, size_t errlen)
{
	struct run_pmem *p;
	char *buf, *tok, *save;

	if (o->nr_pmems >= RUN_MAX_PMEM) {
		snprintf(err, errlen, "too many pmem devices (at most %d)", RUN_MAX_PMEM);
		return -EINVAL;
	}
	buf = o->pmem_buf[o->nr_pmems];
	if (strlen(spec) >= sizeof(o->pmem_buf[0])) {
		snprintf(err, errlen, "--pmem argument too long");
		return -EINVAL;
	}
	strcpy(buf, spec);
	p = &o->pmems[o->nr_pmems];
	*p = (struct run_pmem){0};
	tok = strtok_r(buf, ",", &save);
	if (!tok || !*tok || spec[0] == ',') {
		snprintf(err, errlen, "--pmem needs a path: --pmem PATH[,ro]");
		return -EINVAL;
	}
	p->path = tok;
	while ((tok = strtok_r(NULL, ",", &save))) {
		if (strcmp(tok, "ro") != 0) {
			snprintf(err, errlen, "unknown pmem option '%s' (expected ro)", tok);
			return -EINVAL;
		}
		p->read_only = true;
	}
	o->nr_pmems++;
	return 0;
}

static int parse_share(struct run_opts *o, const char *spec, char *err, size_t errlen)
{
	struct run_share *sh;
	char *buf, *colon, *comma;

	if (o->nr_shares >= RUN_MAX_SHARES) {
		snprintf(err, errlen, "too many shares (at most %d)", RUN_MAX_SHARES);
		return -EINVAL;
	}
	buf = o->share_buf[o->nr_shares];
	if (strlen(spec) >= sizeof(o->share_buf[0])) {
		snprintf(err, errlen, "--share argument too long");
		return -EINVAL;
	}
	strcpy(buf, spec);
	sh = &o->shares[o->nr_shares];
	*sh = (struct run_share){.host = buf};
	colon = strchr(buf, ':');
	if (!colon || colon == buf || colon[1] != '/') {
		snprintf(err, errlen, "--share needs HOSTDIR:GUESTDIR[,ro] (GUESTDIR absolute)");
		return -EINVAL;
	}
	*colon = '\0';
	sh->guest = colon + 1;
	comma = strchr(colon + 1, ',');
	if (comma) {
		*comma = '\0';
		if (strcmp(comma + 1, "ro") != 0) {
			snprintf(err, errlen, "unknown share option '%s' (expected ro)", comma + 1);
			return -EINVAL;
		}
		sh->read_only = true;
	}
	o->nr_shares++;
	return 0;
}

int run_net_params(const char *spec, int index, cJSON **out, char *err, size_t errlen)
{
	char buf[512], id[16], perr[CTL_ERRLEN], *save = NULL, *tok;
	struct nic_params p;
	cJSON *j = cJSON_CreateObject();

	*out = NULL;
	if (!j || strlen(spec) >= sizeof(buf)) {
		snprintf(err, errlen, "--net %s: too long", spec);
		cJSON_Delete(j);
		return -EINVAL;
	}
	snprintf(id, sizeof(id), "net%d", index);
	cJSON_AddStringToObject(j, "id", id);
	strcpy(buf, spec);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *v = strchr(tok, '=');

		if (v)
			*v++ = '\0';
		if (!strcmp(tok, "user") && !v && !cJSON_GetObjectItem(j, "backend")) {
			cJSON_AddStringToObject(j, "backend", "user");
		} else if (!strcmp(tok, "tap") && v && !cJSON_GetObjectItem(j, "backend")) {
			cJSON_AddStringToObject(j, "backend", "tap");
			cJSON_AddStringToObject(j, "tap", v);
		} else if (!strcmp(tok, "mac") && v) {
			cJSON_AddStringToObject(j, "mac", v);
		} else if (!strcmp(tok, "ip") && v) {
			cJSON_AddItemToArray(cJSON_AddArrayToObject(j, "addresses"),
					     cJSON_CreateString(v));
		} else if (!strcmp(tok, "gw") && v) {
			cJSON_AddStringToObject(j, "gateway", v);
		} else if (!strcmp(tok, "mtu") && v) {
			char *end;
			long n = strtol(v, &end, 10);

			if (!*v || *end) {
				snprintf(err, errlen, "--net %s: mtu must be a number", spec);
				cJSON_Delete(j);
				return -EINVAL;
			}
			cJSON_AddNumberToObject(j, "mtu", (double)n);
		} else {
			snprintf(err, errlen,
				 "--net %s: '%s' is not understood (user, or tap=NAME with mac=, "
				 "ip=, gw=, mtu=)",
				 spec, tok);
			cJSON_Delete(j);
			return -EINVAL;
		}
	}
	if (nic_parse_add(j, &p, perr)) {
		/* "params.mac: ..." names the nic.add field; here it is a --net key. */
		snprintf(err, errlen, "--net %s: %s", spec,
			 !strncmp(perr, "params.", 7) ? perr + 7 : perr);
		cJSON_Delete(j);
		return -EINVAL;
	}
	nic_params_free(&p);
	*out = j;
	return 0;
}

int run_opts_parse(struct run_opts *o, int argc, char **argv, char *err, size_t errlen)
{
	bool console_given;

	memset(o, 0, sizeof(*o));
	o->cpus = 1;
	o->mem_mib = 512;
	o->console = CONSOLE_STDIO;
	console_given = false;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *val = NULL, *eq;
		char name[32];
		unsigned long long n;

		if (strcmp(arg, "--") == 0) {
			o->guest_argv = &argv[i + 1];
			o->guest_argc = argc - i - 1;
			if (o->guest_argc == 0) {
				snprintf(err, errlen, "'--' must be followed by a command");
				return -EINVAL;
			}
			break;
		}
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			o->help = true;
			continue;
		}
		if (strcmp(arg, "--entry16") == 0) {
			o->entry16 = true;
			continue;
		}
		if (strcmp(arg, "--no-seccomp") == 0) {
			o->no_seccomp = true;
			continue;
		}
		if (strcmp(arg, "--tty") == 0 || strcmp(arg, "--no-tty") == 0) {
			o->tty = arg[2] == 't' ? RUN_TTY_ON : RUN_TTY_OFF;
			continue;
		}
		if (strncmp(arg, "--", 2) != 0) {
			snprintf(err, errlen, "unexpected argument '%s'", arg);
			return -EINVAL;
		}
		eq = strchr(arg, '=');
		if (eq) {
			if ((size_t)(eq - arg) >= sizeof(name)) {
				snprintf(err, errlen, "unknown option '%s'", arg);
				return -EINVAL;
			}
			memcpy(name, arg, eq - arg);
			name[eq - arg] = '\0';
			val = eq + 1;
		} else {
			snprintf(name, sizeof(name), "%s", arg);
		}
		if (strcmp(name, "--kernel") && strcmp(name, "--initrd") &&
		    strcmp(name, "--firmware") && strcmp(name, "--efi-dir") &&
		    strcmp(name, "--efi-path") && strcmp(name, "--efi-initrd") &&
		    strcmp(name, "--efi-args") && strcmp(name, "--cmdline") &&
		    strcmp(name, "--cpus") && strcmp(name, "--memory") &&
		    strcmp(name, "--io-threads") && strcmp(name, "--console") &&
		    strcmp(name, "--disk") && strcmp(name, "--pmem") && strcmp(name, "--share") &&
		    strcmp(name, "--net") && strcmp(name, "--rootfs")) {
			snprintf(err, errlen, "unknown option '%s' (see uvm-shim run --help)", arg);
			return -EINVAL;
		}
		if (!val) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "option %s needs a value", name);
				return -EINVAL;
			}
			val = argv[++i];
		}
		if (strcmp(name, "--kernel") == 0) {
			o->kernel = val;
		} else if (strcmp(name, "--initrd") == 0) {
			o->initrd = val;
		} else if (strcmp(name, "--firmware") == 0) {
			o->firmware = val;
		} else if (strcmp(name, "--efi-dir") == 0) {
			o->efi_dir = val;
		} else if (strcmp(name, "--efi-path") == 0) {
			o->efi_path = val;
		} else if (strcmp(name, "--efi-initrd") == 0) {
			o->efi_initrd = val;
		} else if (strcmp(name, "--efi-args") == 0) {
			o->efi_args = val;
		} else if (strcmp(name, "--cmdline") == 0) {
			o->cmdline = val;
		} else if (strcmp(name, "--cpus") == 0) {
			if (parse_uint(val, VM_MAX_VCPUS, &n) || n == 0) {
				snprintf(err, errlen, "--cpus must be 1-%d, got '%s'", VM_MAX_VCPUS,
					 val);
				return -EINVAL;
			}
			o->cpus = (int)n;
		} else if (strcmp(name, "--memory") == 0) {
			if (parse_uint(val, VM_MAX_MEM_MIB, &n) || n < VM_MIN_MEM_MIB) {
				snprintf(err, errlen, "--memory must be %d-%llu MiB, got '%s'",
					 VM_MIN_MEM_MIB, (unsigned long long)VM_MAX_MEM_MIB, val);
				return -EINVAL;
			}
			o->mem_mib = n;
		} else if (strcmp(name, "--io-threads") == 0) {
			if (parse_uint(val, IO_THREADS_MAX, &n) || n == 0) {
				snprintf(err, errlen, "--io-threads must be 1-%d, got '%s'",
					 IO_THREADS_MAX, val);
				return -EINVAL;
			}
			o->io_threads = (int)n;
		} else if (strcmp(name, "--console") == 0) {
			console_given = true;
			if (strcmp(val, "stdio") == 0) {
				o->console = CONSOLE_STDIO;
			} else if (strcmp(val, "stderr") == 0) {
				o->console = CONSOLE_STDERR;
			} else if (strcmp(val, "none") == 0) {
				o->console = CONSOLE_NONE;
			} else if (strncmp(val, "file:", 5) == 0 && val[5]) {
				o->console = CONSOLE_FILE;
				o->console_path = val + 5;
			} else {
				snprintf(
				    err, errlen,
				    "--console must be stdio, stderr, file:PATH or none, got '%s'",
				    val);
				return -EINVAL;
			}
		} else if (strcmp(name, "--net") == 0) {
			cJSON *j;

			if (o->nr_nets >= RUN_MAX_NICS) {
				snprintf(err, errlen, "too many --net (at most %d)", RUN_MAX_NICS);
				return -EINVAL;
			}
			if (run_net_params(val, o->nr_nets, &j, err, errlen))
				return -EINVAL;
			cJSON_Delete(j);
			o->nets[o->nr_nets++] = val;
		} else if (strcmp(name, "--disk") == 0) {
			int ret = parse_disk(o, val, err, errlen);

			if (ret)
				return ret;
		} else if (strcmp(name, "--pmem") == 0) {
			int ret = parse_pmem(o, val, err, errlen);

			if (ret)
				return ret;
		} else if (strcmp(name, "--rootfs") == 0) {
			if (!*val) {
				snprintf(err, errlen, "--rootfs needs a directory");
				return -EINVAL;
			}
			o->rootfs = val;
		} else if (strcmp(name, "--share") == 0) {
			int ret = parse_share(o, val, err, errlen);

			if (ret)
				return ret;
		}
	}
	if (o->initrd && !o->kernel) {
		snprintf(err, errlen, "--initrd needs --kernel");
		return -EINVAL;
	}
	if (o->efi_dir || o->efi_path || o->efi_initrd || o->efi_args) {
		char e[CTL_ERRLEN];

		if (!o->firmware) {
			snprintf(err, errlen, "--efi-* options need --firmware");
			return -EINVAL;
		}
		if (o->kernel || o->initrd || o->cmdline) {
			snprintf(err, errlen, "--efi-* options exclude --%s",
				 o->kernel ? "kernel" : o->initrd ? "initrd" : "cmdline");
			return -EINVAL;
		}
		if (!o->efi_dir || !o->efi_path) {
			snprintf(err, errlen, "%s is missing (the EFI application is DIR/REL)",
				 o->efi_dir ? "--efi-path" : "--efi-dir");
			return -EINVAL;
		}
		if (uefi_resolve_app(o->efi_dir, o->efi_path, o->efi_initrd, uefi_cli_names,
				     o->efi_kernel_buf, o->efi_initrd_buf, e)) {
			snprintf(err, errlen, "%s", e);
			return -EINVAL;
		}
		o->kernel = o->efi_kernel_buf;
		o->initrd = o->efi_initrd ? o->efi_initrd_buf : NULL;
		o->cmdline = o->efi_args;
	}
	if (o->cmdline && strlen(o->cmdline) > BOOT_CMDLINE_MAX) {
		snprintf(err, errlen, "--cmdline is %zu bytes, over the limit of %d",
			 strlen(o->cmdline), BOOT_CMDLINE_MAX);
		return -EINVAL;
	}
	if (o->firmware && o->entry16) {
		snprintf(err, errlen, "--entry16 and --firmware exclude each other");
		return -EINVAL;
	}
	if (o->nr_shares && !o->guest_argc) {
		snprintf(err, errlen, "--share needs a command after '--' (the guest agent mounts it)");
		return -EINVAL;
	}
	if (o->rootfs && !o->guest_argc) {
		snprintf(err, errlen, "--rootfs needs a command after '--' (run in the container)");
		return -EINVAL;
	}
	if (o->tty != RUN_TTY_AUTO && !o->guest_argc) {
		snprintf(err, errlen, "--tty and --no-tty need a command after '--'");
		return -EINVAL;
	}
	/* stdout is the command's: the console moves out of its way unless told otherwise. */
	if (o->guest_argc && !console_given)
		o->console = CONSOLE_STDERR;
	return 0;
}
