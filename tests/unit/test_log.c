/* vmm/log.c: escaping of what the guest can put in a message, rate limiting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/log.h"

static void test_escape(void **state)
{
	char out[64];

	assert_int_equal(log_escape(out, sizeof(out), "plain text: ok"), 14);
	assert_string_equal(out, "plain text: ok");
	log_escape(out, sizeof(out), "a\nuvm-shim[main] error x: forged");
	assert_string_equal(out, "a\\x0auvm-shim[main] error x: forged");
	log_escape(out, sizeof(out), "\x1b[2J\x7f\r\\");
	assert_string_equal(out, "\\x1b[2J\\x7f\\x0d\\x5c");
	log_escape(out, sizeof(out), "caf\xc3\xa9"); /* UTF-8 passes */
	assert_string_equal(out, "caf\xc3\xa9");
}

static void test_escape_truncates_whole(void **state)
{
	char out[8];

	/* Never a half escape, always terminated. */
	assert_int_equal(log_escape(out, sizeof(out), "abcd\n"), 4);
	assert_string_equal(out, "abcd");
	assert_int_equal(log_escape(out, sizeof(out), "abcdefghij"), 7);
	assert_string_equal(out, "abcdefg");
	assert_int_equal(log_escape(out, 1, "abc"), 0);
	assert_string_equal(out, "");
}

/* A message quoting guest text reaches stderr as one escaped line. */
static void test_message_is_one_line(void **state)
{
	int fds[2], saved = dup(2);
	char buf[512];
	ssize_t n;

	assert_int_equal(pipe(fds), 0);
	assert_int_equal(dup2(fds[1], 2), 2);
	log_msg(LOG_WARN, "guest", "%s", "hi\n\x1b]0;pwned\x07");
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "guest: hi\\x0a\\x1b]0;pwned\\x07\n"));
	assert_ptr_equal(strchr(buf, '\n'), buf + n - 1);
}

static void test_ratelimit(void **state)
{
	long sec = 0;
	int count = 0, ok = 0;

	for (int i = 0; i < 100; i++)
		ok += log_ratelimit_ok(&sec, &count);
	assert_true(ok >= 5 && ok <= 10); /* 5 a second; the test may straddle a second */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_escape_truncates_whole),
	    cmocka_unit_test(test_message_is_one_line),
	    cmocka_unit_test(test_ratelimit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
