/*
 * The runtime options containerd sends with a Create
 * (CreateTaskRequest.options: a runtimeoptions.v1.Options naming a config
 * file) and the config file itself: a JSON object of vm.create's params plus
 * start_timeout_ms (docs/containerd.md "Configuration"). Pure: no daemon
 * state, so the fuzz target and unit tests call them directly.
 */
#ifndef SHIM_TASK_OPTIONS_H
#define SHIM_TASK_OPTIONS_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "shim/proto/types.pb-c.h"

/* The Any's type, as containerd's typeurl names it (a "prefix/" before it is accepted). */
#define TASK_OPTIONS_TYPE   "runtimeoptions.v1.Options"
#define TASK_CONFIG_MAX	    (64u << 10) /* a config file larger than this is refused */
#define TASK_OPTIONS_ERRLEN 512
/* start_timeout_ms's range (vm.start's timeout_ms). */
#define TASK_START_TIMEOUT_MAX 3600000

/*
 * The config file opts names. 0 with *path NULL: no options, an empty Any or
 * an empty config_path (the daemon's default file). 0 with *path (malloc'ed,
 * absolute, at most PATH_MAX - 1 bytes). Else TTRPC_INVALID_ARGUMENT with
 * err: an Any of another type, a value that does not decode or does not
 * re-encode to its own length (a NUL inside a string, a repeated field), a
 * relative or over-long path.
 */
int task_options_config_path(const Uvm__Ctrd__Any *opts, char **path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Reads the config file at path: 0 with *out (a JSON object), or -errno with
 * err naming the file and what is wrong (-ENOENT and the like from open,
 * -EINVAL: not a regular file, not a JSON object, a start_timeout_ms that is
 * not an integer 1..TASK_START_TIMEOUT_MAX; -EFBIG: over TASK_CONFIG_MAX).
 * Opened without blocking: a FIFO is refused, not waited on.
 */
int task_config_load(const char *path, cJSON **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
