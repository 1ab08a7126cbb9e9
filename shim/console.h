/* The guest's serial console on the host: a sink, and a watcher for fatal lines. */
#ifndef SHIM_CONSOLE_H
#define SHIM_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum console_event {
	CONSOLE_EV_NONE,
	CONSOLE_EV_PANIC_BEGIN, /* "Kernel panic - not syncing" */
	CONSOLE_EV_PANIC_END,	/* "---[ end Kernel panic" */
	CONSOLE_EV_POWER_OFF,	/* "reboot: Power down" / "System halted" */
};

/* Splits console bytes into lines and reports lines that end the guest. */
struct console_watch {
	char line[256];
	size_t len;
	bool truncated;
	char panic_msg[200]; /* the panic line, for the error message */
	bool panic_seen;     /* a panic line went by (a reset after it is a crash) */
};

struct vm;

/* Feeds one byte; returns an event when a line completes with one. */
enum console_event console_watch_byte(struct console_watch *w, uint8_t c);
/*
 * Feeds console output from a vCPU thread: records a panic, and asks the VM
 * to exit at the end of a panic report or at power-off.
 */
void console_watch_feed(struct console_watch *w, struct vm *vm, const uint8_t *buf, size_t len);

#endif
