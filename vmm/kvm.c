/* Opening /dev/kvm and probing its capabilities. */
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"

struct kvm_cap_need {
	int cap;
	const char *name;
};

/* Capabilities the VMM cannot run without. */
static const struct kvm_cap_need kvm_needed[] = {
	{KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
	{KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
	{KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
	{KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
	{KVM_CAP_PIT2, "KVM_CAP_PIT2"},
	{KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
	{KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
	{KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
	{KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
};

int kvm_open(char *err, size_t errlen)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int ver;

	if (fd < 0) {
		int e = errno;

		if (e == ENOENT)
			snprintf(err, errlen,
				 "/dev/kvm is absent: load kvm_intel or kvm_amd (or run inside the "
				 "test host, tests/testhost/run)");
		else if (e == EACCES || e == EPERM)
			snprintf(err, errlen,
				 "no permission to open /dev/kvm: add this user to the kvm group");
		else
			snprintf(err, errlen, "cannot open /dev/kvm: %s", strerror(e));
		return -e;
	}
	ver = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (ver != KVM_API_VERSION) {
		snprintf(err, errlen, "KVM API version %d, expected %d", ver, KVM_API_VERSION);
		close(fd);
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(kvm_needed) / sizeof(kvm_needed[0]); i++) {
		if (ioctl(fd, KVM_CHECK_EXTENSION, kvm_needed[i].cap) <= 0) {
			snprintf(err, errlen, "KVM lacks the capability %s", kvm_needed[i].name);
			close(fd);
			return -ENOTSUP;
		}
	}
	return fd;
}

bool kvm_is_pvm(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

int kvm_report(FILE *out)
{
	static const struct kvm_cap_need extra[] = {
		{KVM_CAP_NR_VCPUS, "recommended vCPUs"},
		{KVM_CAP_MAX_VCPUS, "max vCPUs"},
		{KVM_CAP_NR_MEMSLOTS, "memory slots"},
		{KVM_CAP_IRQ_ROUTING, "GSI routing"},
		{KVM_CAP_SIGNAL_MSI, "signal MSI"},
		{KVM_CAP_SPLIT_IRQCHIP, "split irqchip"},
		{KVM_CAP_X2APIC_API, "x2APIC API"},
		{KVM_CAP_TSC_DEADLINE_TIMER, "TSC deadline timer"},
		{KVM_CAP_ADJUST_CLOCK, "adjust clock"},
	};
	char err[256];
	int fd = kvm_open(err, sizeof(err));

	if (fd < 0) {
		fprintf(out, "kvm: unusable: %s\n", err);
		return 1;
	}
	fprintf(out, "kvm: /dev/kvm API version %d, all required capabilities present\n",
		KVM_API_VERSION);
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
		fprintf(out, "kvm: %-20s %d\n", extra[i].name,
			ioctl(fd, KVM_CHECK_EXTENSION, extra[i].cap));
	if (kvm_is_pvm())
		fprintf(out, "kvm: this host is PVM (module kvm_pvm): only kernels built as PVM "
			     "guests run natively; a stock kernel is emulated and will crawl\n");
	else
		fprintf(out, "kvm: hardware virtualization (not PVM)\n");
	close(fd);
	return 0;
}

long kvm_ioctl_raw(int fd, unsigned long req, unsigned long arg)
{
	long r = ioctl(fd, req, arg);

	return r < 0 ? -errno : r;
}

long kvm_ioctl_named(int fd, unsigned long req, unsigned long arg, const char *name,
		     const char *what)
{
	long r = kvm_ioctl_raw(fd, req, arg);

	if (r < 0)
		pr_err("kvm", "%s%s%s: %s", name, what ? " " : "", what ? what : "", strerror(-r));
	return r;
}
