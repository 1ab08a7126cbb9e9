/* The KVM VM: creation, memory slots, irqchip, GSI routing, exit bookkeeping. */
#include "vm_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm.h"
#include "log.h"
#include "mem_priv.h"
#include "mem_slots.h"
#include "overhead.h"
#include "pci.h"
#include "thread.h"

/*
 * KVM's private pages (VMX only): below 0xFF000000, where QEMU puts them, so a
 * firmware image of up to 16 MiB fits under 4 GiB (vm_map_rom).
 */
#define TSS_ADDR	  0xfeffd000ULL
#define IDENTITY_MAP_ADDR 0xfeffc000ULL

static const char *const exit_names[] = {
	[VM_EXIT_NONE] = "running",
	[VM_EXIT_RESET] = "guest reboot",
	[VM_EXIT_POWEROFF] = "guest power off",
	[VM_EXIT_TRIPLE_FAULT] = "guest triple fault",
	[VM_EXIT_PANIC] = "guest kernel panic",
	[VM_EXIT_ERROR] = "VMM or KVM failure",
	[VM_EXIT_TERMINATED] = "terminated by the host",
};

const char *vm_exit_name(enum vm_exit why)
{
	if ((unsigned)why >= sizeof(exit_names) / sizeof(exit_names[0]))
		return "unknown";
	return exit_names[why];
}

/* Room for at least n routing entries (route_lock held, or setup). */
static int vm_routes_reserve(struct vm *vm, uint32_t n)
{
	struct kvm_irq_routing *r;
	uint32_t cap = vm->routes_cap ? vm->routes_cap : 64;

	if (n > VM_ROUTES_MAX)
		return -ENOSPC;
	if (vm->routing && n <= vm->routes_cap)
		return 0;
	while (cap < n)
		cap *= 2;
	if (cap > VM_ROUTES_MAX)
		cap = VM_ROUTES_MAX;
	r = realloc(vm->routing, sizeof(*r) + cap * sizeof(r->entries[0]));
	if (!r)
		return -ENOMEM;
	if (!vm->routing)
		memset(r, 0, sizeof(*r));
	vm->routing = r;
	vm->routes_cap = cap;
	return 0;
}

static int vm_routing_init(struct vm *vm)
{
	struct kvm_irq_routing *r;
	int n = 0, ret = vm_routes_reserve(vm, 15 + VM_IOAPIC_PINS);

	if (ret)
		return ret;
	r = vm->routing;
	/* The routes KVM_CREATE_IRQCHIP installs: PIC pins 0-15 (not 2), IOAPIC 0-23. */
	for (uint32_t i = 0; i < 16; i++) {
		if (i == 2)
			continue;
		r->entries[n++] = (struct kvm_irq_routing_entry){
			.gsi = i,
			.type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = {.irqchip = i < 8 ? KVM_IRQCHIP_PIC_MASTER
						      : KVM_IRQCHIP_PIC_SLAVE,
				      .pin = i % 8}};
	}
	for (uint32_t i = 0; i < VM_IOAPIC_PINS; i++) {
		r->entries[n++] = (struct kvm_irq_routing_entry){
			.gsi = i,
			.type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = {.irqchip = KVM_IRQCHIP_IOAPIC, .pin = i}};
		vm->gsi_used[i] = 1;
	}
	r->nr = n;
	return 0;
}

/*
 * Runtime slots (virtio-pmem) go above RAM and the 64-bit PCI window, up to
 * the guest's physical address width (CPUID 0x80000008 as the guest sees it).
 */
static int vm_slots_init(struct vm *vm)
{
	uint64_t base = mem_top(vm->mem) + PCI_MMIO64_SIZE, end = 0;
	unsigned bits = 36;
	bool ro;
	int ret;

	for (uint32_t i = 0; i < vm->cpuid->nent; i++)
		if (vm->cpuid->entries[i].function == 0x80000008 &&
		    (vm->cpuid->entries[i].eax & 0xff) >= 36)
			bits = vm->cpuid->entries[i].eax & 0xff;
	if (bits < 64)
		end = 1ULL << bits;
	ro = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) > 0;
	ret = mem_slots_create(&vm->slots, vm->vm_fd, base, end, ro);
	if (ret == -EINVAL) {
		/* A guest too narrow for the window: no runtime slots, not a failure. */
		pr_warn("vm", "no room for memory slots under the %u-bit physical limit", bits);
		ret = mem_slots_create(&vm->slots, vm->vm_fd, 0, MEM_SLOT_SECTION, ro);
		if (!ret)
			vm->slots->alloc.end = vm->slots->alloc.base; /* empty */
	}
	return ret;
}

/*
 * Two setup calls mostly wait in the kernel: KVM_SET_USER_MEMORY_REGION for
 * guest RAM (an SRCU grace period: 2.6-10 ms of wall time for 0.1 ms of CPU
 * on this project's PVM machines) and KVM_CREATE_PIT2 (it starts the PIT's
 * kernel worker thread: 1.6-3.4 ms). Nothing before the vCPUs run needs
 * either (the loader writes RAM through its mapping), so each runs on a
 * thread of its own while the kernel is loaded and the devices are built,
 * and vm_start joins them (docs/vmm.md "Overhead").
 */
static void *vm_job_main(void *arg)
{
	struct vm_job *job = arg;

	pthread_setname_np(pthread_self(), job->name);
	job->ret = job->fn(job->vm);
	return NULL;
}

/* Starts fn on a thread; runs it here if no thread can be made. */
static int vm_job_start(struct vm *vm, int which, const char *name, int (*fn)(struct vm *))
{
	struct vm_job *job = &vm->jobs[which];

	*job = (struct vm_job){.vm = vm, .name = name, .fn = fn};
	if (thread_create(&job->thread, THREAD_STACK_SMALL, vm_job_main, job) == 0) {
		job->pending = true;
		return 0;
	}
	job->ret = fn(vm);
	return job->ret;
}

/* Joins every job; the first failure's -errno. */
static int vm_jobs_wait(struct vm *vm)
{
	int ret = 0;

	for (int i = 0; i < VM_NR_JOBS; i++) {
		if (vm->jobs[i].pending) {
			pthread_join(vm->jobs[i].thread, NULL);
			vm->jobs[i].pending = false;
		}
		if (!ret)
			ret = vm->jobs[i].ret;
	}
	return ret;
}

static int vm_create_pit(struct vm *vm)
{
	struct kvm_pit_config pit = {.flags = 0};
	long r = kvm_ioctl_ptr(vm->vm_fd, KVM_CREATE_PIT2, &pit, NULL);

	return r < 0 ? (int)r : 0;
}

static int vm_ram_slots(struct vm *vm)
{
	int ret = 0;

	for (int i = 0; i < vm->mem->nr_regions && ret >= 0; i++) {
		struct mem_region *mr = &vm->mem->regions[i];
		struct kvm_userspace_memory_region slot = {
			.slot = i,
			.guest_phys_addr = mr->gpa,
			.memory_size = mr->size,
			.userspace_addr = (uintptr_t)mr->hva,
		};

		ret = kvm_ioctl_ptr(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot, "(guest RAM)");
	}
	return ret < 0 ? ret : 0;
}

int vm_create(struct vm **out, const struct vm_config *cfg)
{
	char err[256];
	struct vm *vm;
	int ret;

	*out = NULL;
	if (cfg->nr_cpus < 1 || cfg->nr_cpus > VM_MAX_VCPUS ||
	    cfg->mem_mib < VM_MIN_MEM_MIB || cfg->mem_mib > VM_MAX_MEM_MIB)
		return -EINVAL;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->kvm_fd = vm->vm_fd = vm->exit_fd = -1;
	vm->exits = calloc(1, sizeof(*vm->exits));
	if (!vm->exits) {
		free(vm);
		return -ENOMEM;
	}
	for (int i = 0; i < VM_MAX_VCPUS; i++)
		vm->vcpus[i].fd = -1;
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	pthread_mutex_init(&vm->route_lock, NULL);

	vm->kvm_fd = kvm_open(err, sizeof(err));
	if (vm->kvm_fd < 0) {
		ret = vm->kvm_fd;
		pr_err("kvm", "%s", err);
		goto fail;
	}
	vm->vm_fd = kvm_ioctl(vm->kvm_fd, KVM_CREATE_VM, 0, NULL);
	if (vm->vm_fd < 0) {
		ret = vm->vm_fd;
		goto fail;
	}
	vm->exit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->exit_fd < 0) {
		ret = -errno;
		goto fail;
	}
	uint64_t idmap = IDENTITY_MAP_ADDR;
	if ((ret = kvm_ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, TSS_ADDR, NULL)) < 0 ||
	    (ret = kvm_ioctl_ptr(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap, NULL)) < 0 ||
	    (ret = kvm_ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0, NULL)) < 0)
		goto fail;
	ret = vm_job_start(vm, VM_JOB_PIT, "kvm-pit", vm_create_pit);
	if (ret)
		goto fail;
	ret = vm_routing_init(vm);
	if (ret)
		goto fail;
	overhead_mark("KVM: open, VM, irqchip (PIT started)");

	ret = mem_create(&vm->mem, cfg->mem_mib << 20);
	if (ret) {
		pr_err("mem", "cannot map %llu MiB of guest RAM: %s",
		       (unsigned long long)cfg->mem_mib, strerror(-ret));
		goto fail;
	}
	overhead_mark("guest RAM mapped");
	ret = vm_job_start(vm, VM_JOB_RAM_SLOTS, "ram-slots", vm_ram_slots);
	if (ret)
		goto fail;
	overhead_mark("guest RAM memory slots started");
	ret = bus_create(&vm->pio, "pio");
	if (ret == 0)
		ret = bus_create(&vm->mmio, "mmio");
	if (ret)
		goto fail;

	ret = cpuid_setup(vm);
	if (ret)
		goto fail;
	ret = vm_slots_init(vm);
	if (ret)
		goto fail;
	overhead_mark("buses, CPUID, runtime slots");
	vm->nr_vcpus = cfg->nr_cpus;
	for (int i = 0; i < vm->nr_vcpus; i++) {
		ret = vcpu_init(vm, &vm->vcpus[i], i);
		if (ret)
			goto fail;
	}
	overhead_mark("vCPUs created and configured");
	*out = vm;
	return 0;
fail:
	vm_destroy(vm);
	return ret;
}

static double vm_seconds_since_start(struct vm *vm)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - vm->started_at.tv_sec) + (now.tv_nsec - vm->started_at.tv_nsec) / 1e9;
}

/* The shim's own memory with the guest's RAM left out (debug; overhead.h). */
static void vm_log_memory(struct vm *vm)
{
	struct overhead_range ex[MEM_MAX_REGIONS];
	struct overhead_mem m;
	int n = 0;

	for (int i = 0; i < vm->mem->nr_regions && i < MEM_MAX_REGIONS; i++, n++)
		ex[n] = (struct overhead_range){
		    .start = (uintptr_t)vm->mem->regions[i].hva,
		    .end = (uintptr_t)vm->mem->regions[i].hva + vm->mem->regions[i].size};
	if (overhead_self_mem(ex, n, &m)) {
		pr_dbg("overhead", "memory: /proc/self/smaps unreadable");
		return;
	}
	pr_dbg("overhead",
	       "memory outside guest RAM: anonymous %" PRIu64 " KiB, private %" PRIu64
	       " KiB (dirty %" PRIu64 " KiB), RSS %" PRIu64 " KiB; guest RAM resident %" PRIu64
	       " KiB",
	       m.anon_kib, m.private_kib, m.private_dirty_kib, m.rss_kib, m.excluded_rss_kib);
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	vm_request_exit(vm, VM_EXIT_TERMINATED);
	vm_join(vm);
	vm_jobs_wait(vm);
	if (log_threshold >= LOG_DEBUG && vm->started_at.tv_sec) {
		exit_stats_log(vm->exits, vm_seconds_since_start(vm));
		vm_log_memory(vm);
	}
	for (int i = 0; i < VM_MAX_VCPUS; i++)
		vcpu_fini(&vm->vcpus[i]);
	bus_destroy(vm->pio);
	bus_destroy(vm->mmio);
	mem_slots_destroy(vm->slots);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->exit_fd >= 0)
		close(vm->exit_fd);
	mem_destroy(vm->mem);
	free(vm->cpuid);
	free(vm->exits);
	free(vm->routing);
	pthread_mutex_destroy(&vm->pause_lock);
	pthread_cond_destroy(&vm->pause_cond);
	pthread_mutex_destroy(&vm->route_lock);
	free(vm);
}

int vm_map_rom(struct vm *vm, uint64_t gpa, void *hva, uint64_t size, bool *read_only)
{
	struct kvm_userspace_memory_region slot = {
		.slot = MEM_MAX_REGIONS, /* after RAM's, before mem_slots' */
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};
	long r;

	*read_only = vm->slots->readonly_ok;
	if (*read_only)
		slot.flags = KVM_MEM_READONLY;
	else
		pr_warn("vm", "KVM has no read-only memory: the firmware image is writable RAM");
	r = kvm_ioctl_ptr(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot, "(firmware image)");
	return r < 0 ? (int)r : 0;
}

struct guest_mem *vm_mem(struct vm *vm)
{
	return vm->mem;
}

struct mem_slots *vm_mem_slots(struct vm *vm)
{
	return vm->slots;
}

struct bus *vm_pio_bus(struct vm *vm)
{
	return vm->pio;
}

struct bus *vm_mmio_bus(struct vm *vm)
{
	return vm->mmio;
}

int vm_fd(struct vm *vm)
{
	return vm->vm_fd;
}

int vm_nr_cpus(struct vm *vm)
{
	return vm->nr_vcpus;
}

int vm_set_boot_regs(struct vm *vm, const struct boot_regs *regs)
{
	return vcpu_set_boot_regs(&vm->vcpus[0], regs);
}

void vm_set_vcpu_hook(struct vm *vm, int (*fn)(void *opaque, int id), void *opaque)
{
	vm->vcpu_hook = fn;
	vm->vcpu_hook_opaque = opaque;
}


int vm_start(struct vm *vm)
{
	int ret = vm_jobs_wait(vm);

	if (ret) {
		pr_err("vm", "KVM setup (PIT or guest RAM slots) failed: %s", strerror(-ret));
		return ret;
	}
	overhead_mark("PIT and guest RAM slots joined");
	clock_gettime(CLOCK_MONOTONIC, &vm->started_at);
	for (int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		ret = thread_create(&v->thread, THREAD_STACK_WORKER, vcpu_thread, v);
		if (ret) {
			pr_err("vm", "cannot start vcpu%d: %s", i, strerror(-ret));
			vm_request_exit(vm, VM_EXIT_ERROR);
			return ret;
		}
		v->started = true;
	}
	overhead_mark("vCPU threads created");
	return 0;
}

void vm_request_exit(struct vm *vm, enum vm_exit why)
{
	int none = VM_EXIT_NONE;
	uint64_t one = 1;

	if (!__atomic_compare_exchange_n(&vm->exit_reason, &none, why, false, __ATOMIC_SEQ_CST,
					 __ATOMIC_SEQ_CST))
		return;
	if (vm->exit_fd >= 0 && write(vm->exit_fd, &one, sizeof(one)) < 0)
		pr_warn("vm", "exit eventfd write failed");
	/* Parked vCPUs must wake to see the exit. */
	pthread_mutex_lock(&vm->pause_lock);
	vm->pause_req = false;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	for (int i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
}

void vm_note_acpi_pm_used(struct vm *vm)
{
	__atomic_store_n(&vm->acpi_pm_used, true, __ATOMIC_RELEASE);
}

bool vm_acpi_pm_used(struct vm *vm)
{
	return __atomic_load_n(&vm->acpi_pm_used, __ATOMIC_ACQUIRE);
}

int vm_exit_fd(struct vm *vm)
{
	return vm->exit_fd;
}

enum vm_exit vm_exit_reason(struct vm *vm)
{
	return __atomic_load_n(&vm->exit_reason, __ATOMIC_SEQ_CST);
}

void vm_join(struct vm *vm)
{
	for (int i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].started) {
			pthread_join(vm->vcpus[i].thread, NULL);
			vm->vcpus[i].started = false;
		}
	}
}

int vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	if (vm_exit_reason(vm) != VM_EXIT_NONE) {
		pthread_mutex_unlock(&vm->pause_lock);
		return -ESRCH;
	}
	vm->pause_req = true;
	pthread_mutex_unlock(&vm->pause_lock);
	for (int i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->pause_req && vm->parked < vm->nr_vcpus && vm_exit_reason(vm) == VM_EXIT_NONE)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);
	return vm_exit_reason(vm) == VM_EXIT_NONE ? 0 : -ESRCH;
}

int vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	vm->pause_req = false;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	return 0;
}

/* ---- interrupts ---- */

int vm_irq_line(struct vm *vm, uint32_t gsi, bool level)
{
	struct kvm_irq_level irq = {.irq = gsi, .level = level};

	long r = kvm_ioctl_ptr(vm->vm_fd, KVM_IRQ_LINE, &irq, NULL);

	return r < 0 ? r : 0;
}

int vm_msi_gsi_alloc(struct vm *vm, uint32_t *gsi)
{
	int ret = -ENOSPC;

	pthread_mutex_lock(&vm->route_lock);
	for (uint32_t i = VM_IOAPIC_PINS; i < VM_GSI_MAX; i++) {
		if (!vm->gsi_used[i]) {
			vm->gsi_used[i] = 1;
			*gsi = i;
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&vm->route_lock);
	return ret;
}

/* Removes the MSI entry for gsi, if any (route_lock held). */
static void vm_route_drop(struct vm *vm, uint32_t gsi)
{
	struct kvm_irq_routing *r = vm->routing;

	for (uint32_t i = 0; i < r->nr; i++) {
		if (r->entries[i].gsi == gsi && r->entries[i].type == KVM_IRQ_ROUTING_MSI) {
			r->entries[i] = r->entries[--r->nr];
			return;
		}
	}
}

void vm_msi_gsi_free(struct vm *vm, uint32_t gsi)
{
	if (gsi < VM_IOAPIC_PINS || gsi >= VM_GSI_MAX)
		return;
	pthread_mutex_lock(&vm->route_lock);
	vm_route_drop(vm, gsi);
	vm->gsi_used[gsi] = 0;
	kvm_ioctl_ptr(vm->vm_fd, KVM_SET_GSI_ROUTING, vm->routing, "(MSI route removed)");
	pthread_mutex_unlock(&vm->route_lock);
}

int vm_msi_route_set(struct vm *vm, uint32_t gsi, uint64_t addr, uint32_t data)
{
	struct kvm_irq_routing *r;
	int ret = 0;

	if (gsi < VM_IOAPIC_PINS || gsi >= VM_GSI_MAX)
		return -EINVAL;
	pthread_mutex_lock(&vm->route_lock);
	vm_route_drop(vm, gsi);
	/* ENOSPC cannot happen while each GSI has at most one entry; never write past the table. */
	if (addr && (ret = vm_routes_reserve(vm, vm->routing->nr + 1))) {
		pthread_mutex_unlock(&vm->route_lock);
		return ret;
	}
	r = vm->routing;
	if (addr) {
		r->entries[r->nr++] = (struct kvm_irq_routing_entry){
			.gsi = gsi,
			.type = KVM_IRQ_ROUTING_MSI,
			.u.msi = {.address_lo = (uint32_t)addr,
				  .address_hi = (uint32_t)(addr >> 32),
				  .data = data}};
	}
	ret = kvm_ioctl_ptr_raw(vm->vm_fd, KVM_SET_GSI_ROUTING, r);
	if (ret > 0)
		ret = 0;
	pthread_mutex_unlock(&vm->route_lock);
	return ret;
}

int vm_irqfd(struct vm *vm, int efd, uint32_t gsi, bool assign)
{
	struct kvm_irqfd req = {.fd = efd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN};

	long r = kvm_ioctl_ptr(vm->vm_fd, KVM_IRQFD, &req, NULL);

	return r < 0 ? r : 0;
}

int vm_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, int efd, bool pio, bool assign)
{
	struct kvm_ioeventfd req = {.addr = addr, .len = len, .fd = efd};

	if (pio)
		req.flags |= KVM_IOEVENTFD_FLAG_PIO;
	if (!assign)
		req.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	long r = kvm_ioctl_ptr(vm->vm_fd, KVM_IOEVENTFD, &req, NULL);

	return r < 0 ? r : 0;
}
