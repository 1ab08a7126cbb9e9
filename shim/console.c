/* Console line watcher: spots kernel panics and power-off in the guest's output. */
#include "console.h"

#include <string.h>

#include "vmm/vm.h"

static enum console_event console_classify(struct console_watch *w)
{
	const char *p;

	w->line[w->len] = '\0';
	p = strstr(w->line, "Kernel panic - not syncing");
	if (p) {
		/* Keep the reason for the error message, without the "---[ end" decoration. */
		strncpy(w->panic_msg, p, sizeof(w->panic_msg) - 1);
		w->panic_msg[sizeof(w->panic_msg) - 1] = '\0';
		for (char *q = w->panic_msg; *q; q++)
			if (*q == '\r' || *q == ']')
				*q = '\0';
		return strstr(w->line, "---[ end Kernel panic") ? CONSOLE_EV_PANIC_END
								: CONSOLE_EV_PANIC_BEGIN;
	}
	if (strstr(w->line, "reboot: Power down") || strstr(w->line, "reboot: System halted"))
		return CONSOLE_EV_POWER_OFF;
	return CONSOLE_EV_NONE;
}

enum console_event console_watch_byte(struct console_watch *w, uint8_t c)
{
	enum console_event ev = CONSOLE_EV_NONE;

	if (c == '\n') {
		if (!w->truncated)
			ev = console_classify(w);
		w->len = 0;
		w->truncated = false;
		return ev;
	}
	if (w->len < sizeof(w->line) - 1)
		w->line[w->len++] = (char)c;
	else
		w->truncated = true; /* over-long lines are never fatal markers */
	return ev;
}

void console_watch_feed(struct console_watch *w, struct vm *vm, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		switch (console_watch_byte(w, buf[i])) {
		case CONSOLE_EV_PANIC_BEGIN:
			w->panic_seen = true;
			break;
		case CONSOLE_EV_PANIC_END:
			w->panic_seen = true;
			vm_request_exit(vm, VM_EXIT_PANIC);
			break;
		case CONSOLE_EV_POWER_OFF:
			vm_request_exit(vm, VM_EXIT_POWEROFF);
			break;
		default:
			break;
		}
	}
}
