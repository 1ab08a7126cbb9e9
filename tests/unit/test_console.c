/* shim/console: spotting panics and power-off in the guest console stream; the sink. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "shim/console.h"

static enum console_event feed(struct console_watch *w, const char *s)
{
	enum console_event last = CONSOLE_EV_NONE;

	for (; *s; s++) {
		enum console_event ev = console_watch_byte(w, (uint8_t)*s);

		if (ev != CONSOLE_EV_NONE)
			last = ev;
	}
	return last;
}

static void test_panic_lines(void **state)
{
	struct console_watch w = {0};

	(void)state;
	assert_int_equal(feed(&w, "[    1.0] Run /init as init process\r\n"), CONSOLE_EV_NONE);
	assert_int_equal(
	    feed(&w, "[    2.1] Kernel panic - not syncing: sysrq triggered crash\r\n"),
	    CONSOLE_EV_PANIC_BEGIN);
	assert_string_equal(w.panic_msg, "Kernel panic - not syncing: sysrq triggered crash");
	assert_int_equal(
	    feed(&w,
		 "[    2.2] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---\r\n"),
	    CONSOLE_EV_PANIC_END);
	assert_int_equal(feed(&w, "[    3.0] reboot: Power down\r\n"), CONSOLE_EV_POWER_OFF);
	/* A partial line reports nothing until its newline. */
	assert_int_equal(feed(&w, "Kernel panic - not syncing"), CONSOLE_EV_NONE);
	assert_int_equal(feed(&w, ": x\n"), CONSOLE_EV_PANIC_BEGIN);
}

static void test_long_lines_ignored(void **state)
{
	struct console_watch w = {0};
	char big[1000];

	(void)state;
	memset(big, 'a', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	/* A marker past the line buffer is not trusted (it could be program output split oddly). */
	assert_int_equal(feed(&w, big), CONSOLE_EV_NONE);
	assert_int_equal(feed(&w, "Kernel panic - not syncing: late\n"), CONSOLE_EV_NONE);
	assert_int_equal(feed(&w, "Kernel panic - not syncing: next\n"), CONSOLE_EV_PANIC_BEGIN);
	assert_int_equal(feed(&w, "echo reboot: Power downs are fine in words\n"),
			 CONSOLE_EV_POWER_OFF);
}

/* `run -- CMD` gets CMD's status over the bridge: the agent's console lines are just text. */
static void test_agent_lines_are_not_events(void **state)
{
	struct console_watch w = {0};

	(void)state;
	assert_int_equal(feed(&w, "uvm-gcs: exit 7\r\n"), CONSOLE_EV_NONE);
	assert_int_equal(feed(&w, "uvm-gcs: ready\n"), CONSOLE_EV_NONE);
}

/* ---- the sink (issue 9, defect 5) ------------------------------------------------------ */

static char dir[] = "/tmp/test_console_XXXXXX";

static void path_in(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static void test_sink_refuses_links_and_dirs(void **state)
{
	struct console_sink s;
	char target[128], link[128];
	struct stat st;
	int fd;

	assert_non_null(mkdtemp(dir));
	path_in(target, sizeof(target), "precious");
	path_in(link, sizeof(link), "console.log");
	fd = open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_int_equal(write(fd, "keep", 4), 4);
	close(fd);
	assert_int_equal(symlink(target, link), 0);
	/* A symlink is not followed (the target would have been truncated). */
	assert_int_equal(console_sink_open(&s, link), -ELOOP);
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_size, 4);
	assert_int_equal(console_sink_open(&s, dir), -EISDIR);
	assert_int_equal(s.fd, -1);
	/* A character device is fine (and not capped). */
	assert_int_equal(console_sink_open(&s, "/dev/null"), 0);
	assert_int_equal(s.cap, 0);
	console_sink_close(&s);
	unlink(link);
	unlink(target);
}

static void test_sink_cap(void **state)
{
	struct console_sink s;
	char path[128], buf[256];
	ssize_t n;
	int fd;

	path_in(path, sizeof(path), "capped.log");
	assert_int_equal(console_sink_open(&s, path), 0);
	assert_int_equal(s.cap, CONSOLE_FILE_CAP);
	s.cap = 10; /* the logic, without writing 64 MiB */
	console_sink_write(&s, (const uint8_t *)"0123456", 7);
	console_sink_write(&s, (const uint8_t *)"789abc", 6);
	console_sink_write(&s, (const uint8_t *)"more", 4);
	console_sink_close(&s);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 10);
	buf[n] = '\0';
	assert_memory_equal(buf, "0123456789", 10);
	assert_non_null(strstr(buf + 10, "cap dropped"));
	assert_null(strstr(buf, "more"));
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_panic_lines),
	    cmocka_unit_test(test_long_lines_ignored),
	    cmocka_unit_test(test_agent_lines_are_not_events),
	    cmocka_unit_test(test_sink_refuses_links_and_dirs),
	    cmocka_unit_test(test_sink_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
