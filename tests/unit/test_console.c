/* shim/console: spotting panics and power-off in the guest console stream. */
#include <stdarg.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_panic_lines),
	    cmocka_unit_test(test_long_lines_ignored),
	    cmocka_unit_test(test_agent_lines_are_not_events),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
