/*
 * vm.create's "uefi" object (docs/protocol.md): hcsshim's SetUEFIBoot(dir,
 * path, args) form. The EFI application (a kernel with its EFI stub) and the
 * optional initrd are named relative to `dir` and must resolve beneath it
 * (no `..`, absolute or symbolic links leading out, no /proc magic links);
 * what is handed on is the resolved path of each.
 */
#ifndef SHIM_UEFI_PARAMS_H
#define SHIM_UEFI_PARAMS_H

#include <limits.h>
#include <stdbool.h>

#include <cjson/cJSON.h>

#include "shim/ctl.h"

struct uefi_params {
	const char *firmware; /* borrowed from the request */
	const char *args;     /* borrowed, or NULL: appended to the base command line */
	char kernel[PATH_MAX];
	char initrd[PATH_MAX]; /* "" when not given */
};

/*
 * params.uefi: 0 and *u filled, -ENOENT when absent (u untouched), -EINVAL
 * with a message naming the field. The object excludes vm.create's own
 * kernel, initrd, firmware and cmdline.
 */
int uefi_params_parse(const cJSON *params, struct uefi_params *u, char err[CTL_ERRLEN]);

/*
 * The resolution both front ends share: dir/path (and dir/initrd when given)
 * beneath dir, regular files, their resolved paths in kernel_out and
 * initrd_out ("" without initrd). names: how messages call dir, path and
 * initrd (uefi_json_names for vm.create, uefi_cli_names for run's options).
 */
extern const char *const uefi_json_names[3];
extern const char *const uefi_cli_names[3];
int uefi_resolve_app(const char *dir, const char *path, const char *initrd,
		     const char *const names[3], char kernel_out[PATH_MAX],
		     char initrd_out[PATH_MAX], char err[CTL_ERRLEN]);

#endif
