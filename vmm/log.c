#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum log_level log_threshold = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

size_t log_escape(char *dst, size_t cap, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	if (!cap)
		return 0;
	for (; *src; src++) {
		unsigned char c = (unsigned char)*src;

		if (c >= 0x20 && c != 0x7f && c != '\\') {
			if (n + 1 >= cap)
				break;
			dst[n++] = c;
		} else {
			if (n + 4 >= cap)
				break;
			dst[n++] = '\\';
			dst[n++] = 'x';
			dst[n++] = hex[c >> 4];
			dst[n++] = hex[c & 15];
		}
	}
	dst[n] = '\0';
	return n;
}

/*
 * The line is built here and written with one write(): fprintf on stderr
 * (unbuffered) formats through an 8 KiB buffer on the stack, which made
 * every thread that ever logged keep about 16 KiB of its stack resident
 * (docs/vmm.md "Overhead"); one write also keeps threads' lines whole.
 */
static void log_write(const char *line, size_t len)
{
	while (len) {
		ssize_t n = write(STDERR_FILENO, line, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* nowhere to report it */
		line += n;
		len -= n;
	}
}

static __attribute__((format(printf, 4, 0))) void log_vmsg(enum log_level lvl, const char *tag,
							       int err, const char *fmt, va_list ap)
{
	char thread[16] = "?";
	char line[1280], msg[1024]; /* line holds the raw message first */
	int n;

	if (lvl > log_threshold)
		return;
	pthread_getname_np(pthread_self(), thread, sizeof(thread));
	vsnprintf(line, sizeof(msg), fmt, ap);
	/* Messages quote guest text: no escape sequences or forged lines reach the terminal. */
	log_escape(msg, sizeof(msg), line);
	if (err)
		n = snprintf(line, sizeof(line), "uvm-shim[%s] %s %s: %s: %s\n", thread,
			     level_names[lvl], tag, msg, strerror(err));
	else
		n = snprintf(line, sizeof(line), "uvm-shim[%s] %s %s: %s\n", thread,
			     level_names[lvl], tag, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	log_write(line, n);
}

void log_msg(enum log_level lvl, const char *tag, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, tag, 0, fmt, ap);
	va_end(ap);
}

void log_msg_errno(enum log_level lvl, const char *tag, const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, tag, err, fmt, ap);
	va_end(ap);
	errno = err;
}

int log_ratelimit_ok(long *sec, int *count)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (ts.tv_sec != __atomic_load_n(sec, __ATOMIC_RELAXED)) {
		__atomic_store_n(sec, ts.tv_sec, __ATOMIC_RELAXED);
		__atomic_store_n(count, 0, __ATOMIC_RELAXED);
	}
	return __atomic_add_fetch(count, 1, __ATOMIC_RELAXED) <= 5;
}
