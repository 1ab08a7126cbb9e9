/* /dev/kvm: opening it with clear errors and reporting what it offers. */
#ifndef VMM_KVM_H
#define VMM_KVM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdio.h>

/*
 * Opens /dev/kvm and checks the API version and the capabilities uvm-shim
 * needs. Returns the fd or -errno; err gets a sentence naming the problem
 * (absent, no permission, API version, the missing capability).
 */
int kvm_open(char *err, size_t errlen);
/* The host's KVM is PVM (module kvm_pvm): only PVM guest kernels run natively. */
bool kvm_is_pvm(void);
/* `uvm-shim check`: prints what this host's KVM offers; returns 0 when usable. */
int kvm_report(FILE *out);

/*
 * ioctl(fd, req, arg) returning the result or -errno. The checked forms log
 * a failure naming the ioctl and what it was for (`what`, may be NULL);
 * the raw forms do not, for calls whose failure is an answer (a capability
 * check) or which are the hot path (KVM_RUN). kvm_ioctl_ptr checks at
 * compile time that *ptr has the size the request number encodes.
 */
long kvm_ioctl_named(int fd, unsigned long req, unsigned long arg, const char *name,
		     const char *what);
long kvm_ioctl_raw(int fd, unsigned long req, unsigned long arg);

#define kvm_ioctl(fd, req, val, what) kvm_ioctl_named(fd, req, (unsigned long)(val), #req, what)
#define kvm_ioctl_ptr(fd, req, ptr, what)                                                          \
	({                                                                                         \
		_Static_assert(_IOC_SIZE(req) == sizeof(*(ptr)), #req ": argument size");          \
		kvm_ioctl_named(fd, req, (unsigned long)(ptr), #req, what);                        \
	})
#define kvm_ioctl_ptr_raw(fd, req, ptr)                                                            \
	({                                                                                         \
		_Static_assert(_IOC_SIZE(req) == sizeof(*(ptr)), #req ": argument size");          \
		kvm_ioctl_raw(fd, req, (unsigned long)(ptr));                                      \
	})

#endif
