/*
 * uvm-shim as containerd's runtime v2 shim (`io.containerd.uvm.v1`, binary
 * `containerd-shim-uvm-v1`; docs/containerd.md): the `start` and `delete`
 * subcommands, and the daemon `start` leaves behind, which serves the Task
 * service over ttrpc and is the VM's process.
 */
#ifndef SHIM_TASK_H
#define SHIM_TASK_H

/* argv[0] is the program's name, then containerd's flags and the command. Returns the exit status.
 */
int task_shim_main(int argc, char **argv);

#endif
