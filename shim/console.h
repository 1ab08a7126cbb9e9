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

/*
 * Where console bytes go. A file the parent named keeps at most
 * CONSOLE_FILE_CAP bytes (then one line says the rest was dropped): a guest
 * printing for ever must not fill the host's disk. stdout/stderr and FIFOs
 * are not capped: their reader sets the pace.
 */
#define CONSOLE_FILE_CAP (64ULL << 20)

struct console_sink {
	int fd; /* -1: nowhere */
	bool own;
	uint64_t cap, written; /* cap 0: none */
	bool dropped;
};

/* Sends the console to fd (not owned, not capped), or nowhere with -1. */
void console_sink_fd(struct console_sink *s, int fd);
/*
 * Creates or truncates path, refusing a symlink as the last component and
 * anything but a regular file, FIFO or character device. 0 or -errno.
 */
int console_sink_open(struct console_sink *s, const char *path)
    __attribute__((warn_unused_result));
/* vCPU thread (one at a time: the UART's lock). A reader gone or a full disk stops output. */
void console_sink_write(struct console_sink *s, const uint8_t *buf, size_t len);
void console_sink_close(struct console_sink *s);

/* Feeds one byte; returns an event when a line completes with one. */
enum console_event console_watch_byte(struct console_watch *w, uint8_t c);
/*
 * Feeds console output from a vCPU thread: records a panic, and asks the VM
 * to exit at the end of a panic report or at power-off.
 */
void console_watch_feed(struct console_watch *w, struct vm *vm, const uint8_t *buf, size_t len);

#endif
