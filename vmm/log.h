/*
 * Logging to stderr (stdout belongs to the control protocol). Every folder
 * logs through the pr_* macros below (pr_err, pr_warn, pr_info, pr_dbg,
 * pr_err_errno, pr_warn_errno; log_ratelimited for what a guest can
 * trigger). It lives in vmm/, the bottom layer every other folder may
 * include, because DESIGN.md allows no top-level folder beyond its list.
 */
#ifndef VMM_LOG_H
#define VMM_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_threshold;

/*
 * Each line: "uvm-shim[thread] LEVEL tag: message". Control characters, DEL
 * and backslashes in the message are written as \xNN (log_escape): messages
 * quote what the guest sent, and a guest must not forge log lines or drive
 * the terminal of whoever reads stderr.
 */
void log_msg(enum log_level lvl, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Same, with ": strerror(errno)" appended. */
void log_msg_errno(enum log_level lvl, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Rate-limited variant for guest-triggered messages: at most a few per second per call site. */
#define log_ratelimited(lvl, tag, ...)                                                             \
	do {                                                                                       \
		static long _rl_sec;                                                               \
		static int _rl_count;                                                              \
		if (log_ratelimit_ok(&_rl_sec, &_rl_count))                                        \
			log_msg(lvl, tag, __VA_ARGS__);                                            \
	} while (0)
int log_ratelimit_ok(long *sec, int *count);
/* Copies src into dst (cap bytes, NUL included) with the escaping above; returns the length. */
size_t log_escape(char *dst, size_t cap, const char *src);

#define pr_err(tag, ...)  log_msg(LOG_ERROR, tag, __VA_ARGS__)
#define pr_warn(tag, ...) log_msg(LOG_WARN, tag, __VA_ARGS__)
#define pr_info(tag, ...) log_msg(LOG_INFO, tag, __VA_ARGS__)
/* With ": strerror(errno)" appended. */
#define pr_err_errno(tag, ...)	log_msg_errno(LOG_ERROR, tag, __VA_ARGS__)
#define pr_warn_errno(tag, ...) log_msg_errno(LOG_WARN, tag, __VA_ARGS__)
#define pr_dbg(tag, ...)                                                                           \
	do {                                                                                       \
		if (log_threshold >= LOG_DEBUG)                                                    \
			log_msg(LOG_DEBUG, tag, __VA_ARGS__);                                      \
	} while (0)

#endif
