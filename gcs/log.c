/* Console logging of the init. */
#include "gcs/gcs.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void gcs_vlog(const char *fmt, va_list ap, int err)
{
	char buf[512];
	int n;

	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0)
		return;
	if (err)
		fprintf(stderr, "uvm-gcs: %s: %s\n", buf, strerror(err));
	else
		fprintf(stderr, "uvm-gcs: %s\n", buf);
}

void gcs_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	gcs_vlog(fmt, ap, 0);
	va_end(ap);
}

void gcs_log_errno(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	gcs_vlog(fmt, ap, err);
	va_end(ap);
}
