#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

static __attribute__((format(printf, 4, 0))) void log_vmsg(enum log_level lvl, const char *tag,
							       int err, const char *fmt, va_list ap)
{
	char thread[16] = "?";
	char raw[1024], msg[1024];

	if (lvl > log_threshold)
		return;
	pthread_getname_np(pthread_self(), thread, sizeof(thread));
	vsnprintf(raw, sizeof(raw), fmt, ap);
	/* Messages quote guest text: no escape sequences or forged lines reach the terminal. */
	log_escape(msg, sizeof(msg), raw);
	if (err)
		fprintf(stderr, "uvm-shim[%s] %s %s: %s: %s\n", thread, level_names[lvl], tag, msg,
			strerror(err));
	else
		fprintf(stderr, "uvm-shim[%s] %s %s: %s\n", thread, level_names[lvl], tag, msg);
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
