/* Assembling a machine from its configuration. */
#include "machine.h"
#include "machine_priv.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "boot/boot.h"
#include "seccomp/seccomp.h"
#include "shim/bridge.h"
#include "shim/vpmem.h"
#include "virtio/pmem.h"
#include "virtio/virtio.h"
#include "vmm/acpi_pm.h"
#include "vmm/io_thread.h"
#include "vmm/pci.h"
#include "vmm/overhead.h"
#include "vmm/vm.h"

#define UART_PORT 0x3f8

/* ---- the default guest and its command line ----------------------------------------- */

const char *machine_guest_dir(void)
{
	static char dir[PATH_MAX];
	char exe[PATH_MAX], *base;
	const char *env = getenv("UVM_GUEST_DIR");
	ssize_t n;

	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	base = dirname(exe);
	/* build/uvm-shim finds build/guest; build/asan/uvm-shim finds it one level up. */
	snprintf(dir, sizeof(dir), "%s/guest", base);
	if (access(dir, F_OK) != 0)
		snprintf(dir, sizeof(dir), "%s/../guest", base);
	return dir;
}

int machine_default_guest(const char *dir, char *kernel, size_t klen, char *initrd, size_t ilen)
{
	if (!dir)
		dir = ".";
	/* The bzImage's XZ decompression is 2.8 s of a 9.9 s boot in the test host. */
	snprintf(kernel, klen, "%s/vmlinux", dir);
	if (access(kernel, R_OK) != 0)
		snprintf(kernel, klen, "%s/vmlinuz", dir);
	snprintf(initrd, ilen, "%s/initrd.img", dir);
	return access(kernel, R_OK) || access(initrd, R_OK) ? -ENOENT : 0;
}

int machine_default_guest_efi(const char *dir, char *kernel, size_t klen, char *initrd, size_t ilen)
{
	if (!dir)
		dir = ".";
	snprintf(kernel, klen, "%s/vmlinuz", dir);
	snprintf(initrd, ilen, "%s/initrd.img", dir);
	return access(kernel, R_OK) || access(initrd, R_OK) ? -ENOENT : 0;
}

int machine_cmdline(char *out, size_t cap, const char *extra, bool agent)
{
	int n = snprintf(out, cap, "%s%s%s%s", MACHINE_BASE_CMDLINE, extra ? " " : "",
			 extra ? extra : "", agent ? " -- " BRIDGE_GUEST_COMMAND : "");

	return n < 0 || (size_t)n >= cap || n > BOOT_CMDLINE_MAX ? -E2BIG : 0;
}

/*
 * Filesystems whose page faults are round trips to a server: a file there is
 * read(), not mapped (measured in the test host, whose root is 9p, under
 * strace: 4.9 s to copy a kernel and initrd of 18 MB through a mapping, 0.6 s
 * with read()).
 */
static bool machine_remote_fs(int fd)
{
	static const long remote[] = {
		0x01021997, /* V9FS_MAGIC */
		0x6969,	    /* NFS_SUPER_MAGIC */
		0x65735546, /* FUSE_SUPER_MAGIC */
		0xff534d42, /* CIFS_SUPER_MAGIC */
		0xfe534d42, /* SMB2_SUPER_MAGIC */
		0x00c36400, /* CEPH_SUPER_MAGIC */
	};
	struct statfs sf;

	if (fstatfs(fd, &sf) < 0)
		return true; /* unknown: the safe way */
	for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++)
		if ((long)sf.f_type == remote[i])
			return true;
	return false;
}

/*
 * A local file is mapped rather than read: reading copied it once more
 * through an anonymous buffer as large as the file (measured on this project's
 * PVM machines with the default guest's 80 MB of kernel and initrd: 53 ms of
 * CPU for the read, 80 MB more peak memory, and the copy into guest RAM then
 * faulted that buffer in again). Not MAP_POPULATE: populating the 20,000
 * pages one by one cost 40 ms, while the copy's page faults map 16 cached
 * pages each (fault-around); docs/vmm.md "Overhead". A parent that
 * truncates the file while it is being loaded gets a SIGBUS: that is its
 * own file, given to us to boot. Files larger than guest RAM cannot be
 * loaded and are refused here.
 */
int machine_load_file(const char *path, const char *what, size_t limit, struct loaded_file *lf,
		      char *err, size_t errlen)
{
	struct stat st;
	size_t done = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	lf->data = NULL;
	lf->size = 0;
	lf->mapped = false;
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open %s '%s': %s", what, path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s '%s' is not a regular file", what, path);
		close(fd);
		return -EINVAL;
	}
	if (st.st_size == 0) {
		snprintf(err, errlen, "%s '%s' is empty", what, path);
		close(fd);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size > limit) {
		snprintf(err, errlen, "%s '%s' (%lld bytes) is larger than guest memory", what,
			 path, (long long)st.st_size);
		close(fd);
		return -E2BIG; /* as boot_load reports an image too large */
	}
	if (!machine_remote_fs(fd)) {
		void *p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE,
			       fd, 0);

		if (p != MAP_FAILED) {
			close(fd);
			lf->data = p;
			lf->size = st.st_size;
			lf->mapped = true;
			return 0;
		}
		/* A file that cannot be mapped (a pipe-like special file passed as regular) is read. */
	}
	lf->data = malloc(st.st_size);
	if (!lf->data) {
		snprintf(err, errlen, "no memory to load %s '%s'", what, path);
		close(fd);
		return -ENOMEM;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, lf->data + done, st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			snprintf(err, errlen, "cannot read %s '%s': %s", what, path,
				 n < 0 ? strerror(errno) : "file shrank while being read");
			close(fd);
			free(lf->data);
			lf->data = NULL;
			return ret;
		}
		done += n;
	}
	close(fd);
	lf->size = done;
	return 0;
}

void machine_unload_file(struct loaded_file *lf)
{
	if (lf->mapped)
		munmap(lf->data, lf->size);
	else
		free(lf->data);
	lf->data = NULL;
	lf->mapped = false;
}

int machine_load_boot_files(const struct machine_config *cfg, struct loaded_file *kernel,
			    struct loaded_file *initrd, char *err, size_t errlen)
{
	int ret = machine_load_file(cfg->kernel, "kernel", cfg->mem_mib << 20, kernel, err, errlen);

	if (!ret && cfg->initrd)
		ret = machine_load_file(cfg->initrd, "initrd", cfg->mem_mib << 20, initrd, err,
					errlen);
	return ret;
}

/* The loaders' plan reaches guest RAM only through vmm/'s checked mem_write. */
static int machine_write_guest(void *opaque, uint64_t gpa, const void *src, uint64_t len)
{
	return mem_write(opaque, gpa, src, len);
}

void machine_acpi_config(struct boot_acpi *acpi, const struct guest_mem *mem)
{
	*acpi = (struct boot_acpi){.pm_base = ACPI_PM_BASE,
				   .sci_irq = ACPI_PM_SCI_IRQ,
				   .s5_type = ACPI_PM_S5_TYPE,
				   .reset_port = 0xcf9, /* vmm/pci.c: RST_CPU | SYS_RST */
				   .reset_value = 0x06,
				   .mmio32_start = PCI_MMIO32_START,
				   .mmio32_end = PCI_MMIO32_END,
				   .mmio64_start = mem_top(mem),
				   .mmio64_end = mem_top(mem) + PCI_MMIO64_SIZE};
}

static int machine_load_kernel(struct machine *m, const struct machine_config *cfg, char *err,
			       size_t errlen)
{
	struct boot_acpi acpi;
	struct loaded_file kernel = {0}, initrd = {0};
	struct guest_mem *mem = vm_mem(m->vm);
	struct boot_plan *plan = NULL;
	struct boot_input in;
	struct boot_ram ram;
	char why[256];
	int ret;

	ret = machine_load_boot_files(cfg, &kernel, &initrd, err, errlen);
	if (ret)
		goto out;
	overhead_mark("kernel and initrd read");
	plan = malloc(sizeof(*plan));
	if (!plan) {
		ret = -ENOMEM;
		snprintf(err, errlen, "cannot allocate the boot plan");
		goto out;
	}
	mem_layout(mem, &ram.lo_size, &ram.hi_size);
	in = (struct boot_input){.kernel = kernel.data,
				 .kernel_size = kernel.size,
				 .initrd = initrd.data,
				 .initrd_size = initrd.size,
				 .cmdline = cfg->cmdline,
				 .nr_cpus = cfg->cpus,
				 .entry = cfg->entry16 ? BOOT_ENTRY_REAL16 : BOOT_ENTRY_DEFAULT,
				 .acpi = &acpi};
	machine_acpi_config(&acpi, mem);
	ret = boot_load(plan, &ram, &in, why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "cannot load kernel '%s': %s", cfg->kernel, why);
		goto out;
	}
	overhead_mark("boot plan: kernel parsed, tables built");
	ret = boot_plan_apply(plan, machine_write_guest, mem);
	if (ret) {
		snprintf(err, errlen, "cannot write the boot plan into guest RAM: %s",
			 strerror(-ret));
		goto out;
	}
	overhead_mark("boot plan written into guest RAM");
	ret = vm_set_boot_regs(m->vm, &plan->regs);
	if (ret)
		snprintf(err, errlen, "cannot set the boot registers: %s", strerror(-ret));
out:
	free(plan);
	machine_unload_file(&kernel);
	machine_unload_file(&initrd);
	return ret;
}

int machine_create(struct machine **out, const struct machine_config *cfg, struct loop *loop,
		   char *err, size_t errlen)
{
	struct machine *m;
	int ret;

	*out = NULL;
	overhead_mark("configuration (run options, vm.create)");
	if (cfg->nr_disks < 0 || cfg->nr_disks > MACHINE_MAX_DISKS) {
		snprintf(err, errlen, "at most %d disks", MACHINE_MAX_DISKS);
		return -EINVAL;
	}
	if (cfg->nr_pmems < 0 || cfg->nr_pmems > MACHINE_MAX_PMEM) {
		snprintf(err, errlen, "at most %d pmem devices", MACHINE_MAX_PMEM);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->loop = loop;
	ret = io_threads_create(cfg->io_threads ? cfg->io_threads : MACHINE_IO_THREADS_DEFAULT,
				&m->io);
	if (ret) {
		snprintf(err, errlen, "cannot make the I/O threads' loops: %s", strerror(-ret));
		goto fail;
	}
	ret = vm_create(&m->vm, &(struct vm_config){.nr_cpus = cfg->cpus, .mem_mib = cfg->mem_mib});
	if (ret) {
		snprintf(err, errlen, "cannot create the VM: %s (details above)", strerror(-ret));
		goto fail;
	}
	if (!cfg->firmware) {
		ret = machine_load_kernel(m, cfg, err, errlen);
		if (ret)
			goto fail;
	} else if (cfg->mem_mib > MACHINE_UEFI_MAX_MEM_MIB) {
		snprintf(err, errlen, "UEFI boot takes at most %d MiB of memory (asked: %llu)",
			 MACHINE_UEFI_MAX_MEM_MIB, (unsigned long long)cfg->mem_mib);
		ret = -EINVAL;
		goto fail;
	}
	ret = uart_create(m->vm, UART_PORT, VM_IRQ_UART, cfg->console_out, cfg->console_opaque,
			  &m->uart);
	if (!ret)
		ret = i8042_create(m->vm, &m->kbc);
	if (!ret)
		ret = cmos_create(m->vm, &m->cmos);
	if (!ret)
		ret = acpi_pm_create(m->vm, &m->acpi_pm);
	if (!ret)
		ret = pci_bus_create_vm(&m->pci, m->vm);
	if (ret) {
		snprintf(err, errlen, "cannot create the platform devices: %s", strerror(-ret));
		goto fail;
	}
	overhead_mark("platform devices, PCI bus");
	if (cfg->firmware) {
		ret = machine_uefi_setup(m, cfg, err, errlen);
		if (ret)
			goto fail;
	}
	ret = virtio_rng_create(m->pci, vm_mem(m->vm), loop, &m->rng);
	if (ret) {
		snprintf(err, errlen, "cannot create virtio-rng: %s", strerror(-ret));
		goto fail;
	}
	for (int i = 0; i < cfg->nr_disks; i++) {
		const struct machine_disk *d = &cfg->disks[i];
		struct blk_config bc = {.path = d->path,
					.read_only = d->read_only,
					.serial = d->serial,
					.num_queues = cfg->cpus};

		ret = virtio_blk_create(m->pci, vm_mem(m->vm), io_threads_pick(m->io), &bc,
					&m->disks[i]);
		if (ret) {
			snprintf(err, errlen, "cannot attach disk '%s': %s", d->path,
				 strerror(-ret));
			goto fail;
		}
		m->nr_disks++;
	}
	for (int i = 0; i < cfg->nr_pmems; i++) {
		struct pmem_config pc = {.path = cfg->pmems[i].path,
					 .read_only = cfg->pmems[i].read_only,
					 .max_bytes = VPMEM_DEFAULT_MAX_BYTES};

		ret = virtio_pmem_create(m->pci, vm_mem(m->vm), io_threads_pick(m->io),
					 vm_mem_slots(m->vm), &pc, &m->pmems[i], err, errlen);
		if (ret)
			goto fail;
		m->nr_pmems++;
	}
	overhead_mark("virtio devices");
	*out = m;
	return 0;
fail:
	machine_destroy(m);
	return ret;
}

/* Each I/O thread filters itself before its loop runs: the io class (docs/seccomp.md). */
static int io_thread_sandbox(void *opaque)
{
	(void)opaque;
	return sandbox_apply(SANDBOX_IO);
}

/*
 * The sandbox (seccomp/seccomp.h) closes here, on the thread that built the
 * VM and runs the event loop: privileges and the filesystem (Landlock) go
 * before the vCPU threads exist (they inherit both), each vCPU filters
 * itself before its first KVM_RUN, and this thread filters itself once they
 * run.
 */
int machine_start(struct machine *m)
{
	int ret;

	overhead_mark("devices wired to the event loop");
	ret = sandbox_drop_privileges();
	/* Before the vCPU threads exist: they are created inside this domain. */
	if (!ret)
		ret = sandbox_landlock();
	if (ret)
		return ret;
	overhead_mark("privileges dropped, Landlock domain");
	/* Built once here, installed by each vCPU with one call (docs/vmm.md "Overhead"). */
	ret = sandbox_prepare(SANDBOX_VCPU);
	if (ret)
		return ret;
	overhead_mark("vCPU seccomp filter compiled");
	/* Inside the Landlock domain and without privileges, like the vCPUs; their
	 * class compiled once for them. */
	ret = sandbox_prepare(SANDBOX_IO);
	if (!ret)
		ret = io_threads_start(m->io, io_thread_sandbox, NULL);
	if (ret)
		return ret;
	overhead_mark("I/O threads");
	vm_set_vcpu_hook(m->vm, sandbox_vcpu_hook, NULL);
	ret = vm_start(m->vm);
	if (!ret)
		ret = sandbox_apply(SANDBOX_LOOP);
	if (!ret) {
		overhead_mark("loop thread seccomp filter");
		/*
		 * Setup's temporaries (libseccomp's compilation, the boot plan's
		 * parsing) are freed but their heap pages stay resident: hand them back.
		 */
		malloc_trim(0);
		overhead_mark("heap trimmed");
	}
	return ret;
}

void machine_destroy(struct machine *m)
{
	if (!m)
		return;
	if (m->vm) {
		vm_request_exit(m->vm, VM_EXIT_TERMINATED); /* no-op if it already ended */
		vm_join(m->vm);
	}
	for (int i = m->nr_pmems - 1; i >= 0; i--)
		virtio_dev_destroy(m->pmems[i]);
	for (int i = m->nr_disks - 1; i >= 0; i--)
		virtio_dev_destroy(m->disks[i]);
	virtio_dev_destroy(m->rng);
	/* Their devices are gone: the disks above, hot-added ones before (managers' unbind). */
	io_threads_destroy(m->io);
	machine_uefi_detach(m->uefi);
	pci_bus_destroy(m->pci);
	uart_destroy(m->uart);
	i8042_destroy(m->kbc);
	cmos_destroy(m->cmos);
	acpi_pm_destroy(m->acpi_pm);
	vm_destroy(m->vm);
	machine_uefi_destroy(m->uefi);
	free(m);
}
