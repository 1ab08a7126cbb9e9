/* /dev/kvm: opening it with clear errors and reporting what it offers. */
#ifndef VMM_KVM_H
#define VMM_KVM_H

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

#endif
