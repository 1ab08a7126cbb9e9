/* vCPUs: creation, initial register state, the KVM_RUN loop and its exits. */
#include "vm_priv.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm.h"
#include "log.h"
#include "overhead.h"

#define VCPU_KICK_SIGNAL SIGUSR1

#define APIC_LVT0	0x350
#define APIC_LVT1	0x360
#define APIC_MODE_NMI	0x4
#define APIC_MODE_EXTINT 0x7

static void vcpu_kick_handler(int sig)
{
	(void)sig; /* only there to make KVM_RUN return EINTR */
}

static void vcpu_signal_init(void)
{
	struct sigaction sa = {.sa_handler = vcpu_kick_handler};

	sigemptyset(&sa.sa_mask);
	sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
}

static void vcpu_signal_setup(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, vcpu_signal_init);
}

static void lapic_set_lvt(struct kvm_lapic_state *st, int reg, uint32_t mode)
{
	uint32_t v;

	memcpy(&v, &st->regs[reg], sizeof(v));
	v = (v & ~0x700u) | (mode << 8);
	memcpy(&st->regs[reg], &v, sizeof(v));
}

/* LINT0 as ExtINT (the PIC) and LINT1 as NMI, as firmware leaves them. */
static int vcpu_lapic_init(struct vcpu *vcpu)
{
	struct kvm_lapic_state st;

	long r = kvm_ioctl_ptr(vcpu->fd, KVM_GET_LAPIC, &st, NULL);

	if (r < 0)
		return r;
	lapic_set_lvt(&st, APIC_LVT0, APIC_MODE_EXTINT);
	lapic_set_lvt(&st, APIC_LVT1, APIC_MODE_NMI);
	r = kvm_ioctl_ptr(vcpu->fd, KVM_SET_LAPIC, &st, NULL);
	return r < 0 ? r : 0;
}

int vcpu_init(struct vm *vm, struct vcpu *vcpu, int id)
{
	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
	int size, ret;

	vcpu_signal_setup();
	vcpu->vm = vm;
	vcpu->id = id;
	vcpu->fd = kvm_ioctl(vm->vm_fd, KVM_CREATE_VCPU, id, NULL);
	if (vcpu->fd < 0)
		return vcpu->fd;
	size = kvm_ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0, NULL);
	if (size < (int)sizeof(struct kvm_run))
		return -EINVAL;
	vcpu->run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		vcpu->run = NULL;
		return -errno;
	}
	vcpu->run_size = size;
	ret = cpuid_apply(vm, vcpu);
	if (ret)
		return ret;
	ret = vcpu_lapic_init(vcpu);
	if (ret) {
		pr_err("kvm", "vcpu%d: LAPIC setup failed: %s", id, strerror(-ret));
		return ret;
	}
	ret = kvm_ioctl_ptr(vcpu->fd, KVM_SET_FPU, &fpu, NULL);
	return ret < 0 ? ret : 0;
}

void vcpu_fini(struct vcpu *vcpu)
{
	if (vcpu->run)
		munmap(vcpu->run, vcpu->run_size);
	vcpu->run = NULL;
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->fd = -1;
}

static void seg_flat(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64, bool db)
{
	*s = (struct kvm_segment){.base = 0,
				  .limit = 0xffffffff,
				  .selector = sel,
				  .type = type,
				  .present = 1,
				  .dpl = 0,
				  .db = db,
				  .s = 1,
				  .l = code64,
				  .g = 1};
}

static void seg_real(struct kvm_segment *s, uint16_t sel, uint8_t type)
{
	*s = (struct kvm_segment){
		.base = (uint64_t)sel << 4, .limit = 0xffff, .selector = sel, .type = type,
		.present = 1, .s = 1};
}

int vcpu_set_boot_regs(struct vcpu *vcpu, const struct boot_regs *br)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = {.rflags = 0x2};

	long r = kvm_ioctl_ptr(vcpu->fd, KVM_GET_SREGS, &sregs, NULL);

	if (r < 0)
		return r;
	regs.rip = br->rip;
	regs.rsp = br->rsp;
	regs.rsi = br->rsi;
	regs.rbx = br->rbx;

	switch (br->mode) {
	case BOOT_MODE_REAL16:
		seg_real(&sregs.cs, br->real_cs, 0xb);
		seg_real(&sregs.ds, br->real_ds, 0x3);
		sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
		sregs.cr0 &= ~1ULL; /* PE off */
		break;
	case BOOT_MODE_PROT32:
		seg_flat(&sregs.cs, br->code_sel, 0xb, false, true);
		seg_flat(&sregs.ds, br->data_sel, 0x3, false, true);
		sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
		sregs.gdt.base = br->gdt_base;
		sregs.gdt.limit = br->gdt_limit;
		sregs.cr0 = 0x11; /* PE | ET */
		sregs.cr4 = 0;
		sregs.efer = 0;
		break;
	case BOOT_MODE_LONG64:
		seg_flat(&sregs.cs, br->code_sel, 0xb, true, false);
		seg_flat(&sregs.ds, br->data_sel, 0x3, false, true);
		sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
		sregs.gdt.base = br->gdt_base;
		sregs.gdt.limit = br->gdt_limit;
		sregs.cr0 = 0x80000011; /* PG | ET | PE */
		sregs.cr3 = br->cr3;
		sregs.cr4 = 0x20; /* PAE */
		sregs.efer = 0x500; /* LMA | LME */
		break;
	default:
		return -EINVAL;
	}
	r = kvm_ioctl_ptr(vcpu->fd, KVM_SET_SREGS, &sregs, "(boot registers)");
	if (r >= 0)
		r = kvm_ioctl_ptr(vcpu->fd, KVM_SET_REGS, &regs, "(boot registers)");
	return r < 0 ? r : 0;
}

void vcpu_kick(struct vcpu *vcpu)
{
	if (!vcpu->run)
		return;
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (vcpu->started)
		pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
}

void vcpu_dump(struct vcpu *vcpu)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (kvm_ioctl_ptr(vcpu->fd, KVM_GET_REGS, &r, "(register dump)") < 0 ||
	    kvm_ioctl_ptr(vcpu->fd, KVM_GET_SREGS, &s, "(register dump)") < 0)
		return;
	pr_err("vcpu", "vcpu%d: rip %016llx rsp %016llx rflags %08llx", vcpu->id, r.rip, r.rsp,
	       r.rflags);
	pr_err("vcpu", "vcpu%d: rax %016llx rbx %016llx rcx %016llx rdx %016llx", vcpu->id, r.rax,
	       r.rbx, r.rcx, r.rdx);
	pr_err("vcpu", "vcpu%d: rsi %016llx rdi %016llx rbp %016llx", vcpu->id, r.rsi, r.rdi,
	       r.rbp);
	pr_err("vcpu", "vcpu%d: cs %04x base %llx l%d db%d  cr0 %llx cr3 %llx cr4 %llx efer %llx",
	       vcpu->id, s.cs.selector, s.cs.base, s.cs.l, s.cs.db, s.cr0, s.cr3, s.cr4, s.efer);
}

static void vcpu_pio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool write = run->io.direction == KVM_EXIT_IO_OUT;

	exit_stats_pio(vcpu->vm->exits, run->io.port);
	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		if (!bus_access(vcpu->vm->pio, run->io.port, data, run->io.size, write) && !write)
			memset(data, 0xff, run->io.size);
	}
}

static void vcpu_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint32_t len = run->mmio.len;

	exit_stats_mmio(vcpu->vm->exits, run->mmio.phys_addr);
	if (len > sizeof(run->mmio.data))
		len = sizeof(run->mmio.data);
	if (!bus_access(vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data, len,
			run->mmio.is_write) &&
	    !run->mmio.is_write)
		memset(run->mmio.data, 0xff, len);
}

/* Returns false when the VM must stop. */
static bool vcpu_handle_exit(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	struct vm *vm = vcpu->vm;

	exit_stats_reason(vm->exits, run->exit_reason);
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		vcpu_pio(vcpu);
		return true;
	case KVM_EXIT_MMIO:
		vcpu_mmio(vcpu);
		return true;
	case KVM_EXIT_HLT:
	case KVM_EXIT_INTR:
	case KVM_EXIT_IRQ_WINDOW_OPEN:
	case KVM_EXIT_DEBUG:
		return true;
	case KVM_EXIT_SHUTDOWN:
		pr_err("vcpu", "vcpu%d: shutdown exit (triple fault)", vcpu->id);
		vcpu_dump(vcpu);
		vm_request_exit(vm, VM_EXIT_TRIPLE_FAULT);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_RESET:
			vm_request_exit(vm, VM_EXIT_RESET);
			break;
		case KVM_SYSTEM_EVENT_CRASH:
			vm_request_exit(vm, VM_EXIT_PANIC);
			break;
		default:
			vm_request_exit(vm, VM_EXIT_POWEROFF);
			break;
		}
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		pr_err("vcpu", "vcpu%d: KVM_EXIT_FAIL_ENTRY, hardware reason 0x%llx", vcpu->id,
		       (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vcpu_dump(vcpu);
		vm_request_exit(vm, VM_EXIT_ERROR);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		pr_err("vcpu", "vcpu%d: KVM internal error, suberror %u", vcpu->id,
		       run->internal.suberror);
		vcpu_dump(vcpu);
		vm_request_exit(vm, VM_EXIT_ERROR);
		return false;
	default:
		pr_err("vcpu", "vcpu%d: unhandled exit reason %u", vcpu->id, run->exit_reason);
		vcpu_dump(vcpu);
		vm_request_exit(vm, VM_EXIT_ERROR);
		return false;
	}
}

/* Parks while a pause is requested; returns false when the VM is ending. */
static bool vcpu_pause_point(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;

	if (vm_exit_reason(vm) != VM_EXIT_NONE)
		return false;
	if (!__atomic_load_n(&vm->pause_req, __ATOMIC_SEQ_CST))
		return true;
	pthread_mutex_lock(&vm->pause_lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (vm->pause_req && vm_exit_reason(vm) == VM_EXIT_NONE)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	vm->parked--;
	pthread_mutex_unlock(&vm->pause_lock);
	return vm_exit_reason(vm) == VM_EXIT_NONE;
}

void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	char name[16];
	sigset_t set;

	snprintf(name, sizeof(name), "vcpu%d", vcpu->id);
	pthread_setname_np(pthread_self(), name);
	if (vcpu->id == 0)
		overhead_mark("vcpu0 thread running");
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	if (vcpu->vm->vcpu_hook && vcpu->vm->vcpu_hook(vcpu->vm->vcpu_hook_opaque, vcpu->id)) {
		pr_err("vcpu", "vcpu%d: thread setup failed", vcpu->id);
		vm_request_exit(vcpu->vm, VM_EXIT_ERROR);
		return NULL;
	}
	if (vcpu->id == 0 && vcpu->vm->vcpu_hook)
		overhead_mark("vcpu0 thread setup (seccomp filter)");

	for (;;) {
		/* Clear before checking the flags so a kick after the check still lands. */
		__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		if (!vcpu_pause_point(vcpu))
			break;
		bool first = vcpu->id == 0 && overhead_first_run();
		long r = kvm_ioctl_raw(vcpu->fd, KVM_RUN, 0);

		if (first)
			overhead_log_setup(); /* after the run: the figures are taken */

		if (r < 0) {
			if (r == -EINTR || r == -EAGAIN)
				continue;
			pr_err("vcpu", "vcpu%d: KVM_RUN: %s", vcpu->id, strerror((int)-r));
			vm_request_exit(vcpu->vm, VM_EXIT_ERROR);
			break;
		}
		if (!vcpu_handle_exit(vcpu))
			break;
	}
	return NULL;
}
