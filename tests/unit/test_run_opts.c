/* shim/run_opts: `uvm-shim run` options, including bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "shim/run.h"

#include "shim/run_opts.h"
#include "shim/run_spec.h"

static struct run_opts opts;
static char err[256];

static char *argv_copy[32]; /* outlives the call: opts.guest_argv points into it */

static int parse(int argc, const char **argv)
{
	memcpy(argv_copy, argv, argc * sizeof(argv[0]));
	err[0] = '\0';
	return run_opts_parse(&opts, argc, argv_copy, err, sizeof(err));
}

#define PARSE(...)                                                                                 \
	({                                                                                         \
		const char *_a[] = {"run", __VA_ARGS__};                                           \
		parse(sizeof(_a) / sizeof(_a[0]), _a);                                             \
	})

static void test_defaults_and_values(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--kernel", "k"), 0);
	assert_int_equal(opts.cpus, 1);
	assert_int_equal(opts.mem_mib, 512);
	assert_int_equal(opts.io_threads, 0); /* the machine's default */
	assert_int_equal(opts.console, CONSOLE_STDIO);
	assert_int_equal(PARSE("--io-threads", "8"), 0);
	assert_int_equal(opts.io_threads, 8);
	assert_int_equal(PARSE("--io-threads=3"), 0);
	assert_int_equal(opts.io_threads, 3);
	assert_int_equal(PARSE("--kernel=k", "--initrd", "i", "--cpus=2", "--memory", "1024",
			       "--cmdline", "a=b c", "--console", "file:/tmp/x"),
			 0);
	assert_string_equal(opts.kernel, "k");
	assert_string_equal(opts.initrd, "i");
	assert_int_equal(opts.cpus, 2);
	assert_int_equal(opts.mem_mib, 1024);
	assert_string_equal(opts.cmdline, "a=b c");
	assert_int_equal(opts.console, CONSOLE_FILE);
	assert_string_equal(opts.console_path, "/tmp/x");
	assert_int_equal(PARSE("--console", "none", "--", "uname", "-r"), 0);
	assert_int_equal(opts.console, CONSOLE_NONE);
	assert_int_equal(opts.guest_argc, 2);
	assert_string_equal(opts.guest_argv[1], "-r");
}

static void test_firmware(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--firmware", "/usr/share/ovmf/OVMF.fd"), 0);
	assert_string_equal(opts.firmware, "/usr/share/ovmf/OVMF.fd");
	assert_null(opts.kernel); /* the default guest's vmlinuz, chosen by run.c */
	assert_int_equal(PARSE("--firmware=fw", "--kernel", "k", "--", "true"), 0);
	assert_string_equal(opts.firmware, "fw");
	assert_int_equal(PARSE("--firmware"), -EINVAL);
	assert_non_null(strstr(err, "--firmware"));
	assert_int_equal(PARSE("--firmware", "fw", "--entry16"), -EINVAL);
	assert_non_null(strstr(err, "--entry16"));
}

/* The uefi form: --efi-dir/--efi-path resolved beneath the dir (shim/uefi_params.c). */
static void test_efi_form(void **state)
{
	char dir[] = "/tmp/uvm-test-efi-XXXXXX", k[64], link[64], real[PATH_MAX];
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(k, sizeof(k), "%s/vmlinuz", dir);
	f = fopen(k, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(link, sizeof(link), "%s/out", dir);
	assert_int_equal(symlink("/etc/passwd", link), 0);
	assert_non_null(realpath(k, real));

	assert_int_equal(PARSE("--firmware", "fw", "--efi-dir", dir, "--efi-path", "vmlinuz",
			       "--efi-args", "quiet", "--", "true"),
			 0);
	assert_string_equal(opts.kernel, real);
	assert_null(opts.initrd);
	assert_string_equal(opts.cmdline, "quiet");
	assert_int_equal(PARSE("--firmware", "fw", "--efi-dir", dir, "--efi-path", "vmlinuz",
			       "--efi-initrd", "vmlinuz"),
			 0);
	assert_string_equal(opts.initrd, real);

	assert_int_equal(PARSE("--efi-dir", dir, "--efi-path", "vmlinuz"), -EINVAL);
	assert_non_null(strstr(err, "need --firmware"));
	assert_int_equal(PARSE("--firmware", "fw", "--efi-dir", dir), -EINVAL);
	assert_non_null(strstr(err, "--efi-path is missing"));
	assert_int_equal(PARSE("--firmware", "fw", "--efi-dir", dir, "--efi-path", "vmlinuz",
			       "--kernel", "k"),
			 -EINVAL);
	assert_non_null(strstr(err, "exclude --kernel"));
	assert_int_equal(PARSE("--firmware", "fw", "--efi-dir", dir, "--efi-path", "vmlinuz",
			       "--cmdline", "x"),
			 -EINVAL);
	assert_non_null(strstr(err, "exclude --cmdline"));
	assert_int_equal(PARSE("--firmware", "fw", "--efi-dir", dir, "--efi-path", "out"),
			 -EINVAL);
	assert_non_null(strstr(err, "--efi-path: out: leads outside --efi-dir"));
	assert_int_equal(PARSE("--firmware", "fw", "--efi-dir", dir, "--efi-path", "vmlinuz",
			       "--efi-initrd", "../../etc/passwd"),
			 -EINVAL);
	assert_non_null(strstr(err, "--efi-initrd"));
	assert_int_equal(PARSE("--firmware", "fw", "--efi-dir", "/nonexistent", "--efi-path",
			       "x"),
			 -EINVAL);
	assert_non_null(strstr(err, "--efi-dir: /nonexistent"));
	unlink(link);
	unlink(k);
	rmdir(dir);
}

static void test_bad_counts(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--cpus", "0"), -EINVAL);
	assert_non_null(strstr(err, "--cpus"));
	assert_int_equal(PARSE("--io-threads", "0"), -EINVAL);
	assert_non_null(strstr(err, "--io-threads must be 1-8, got '0'"));
	assert_int_equal(PARSE("--io-threads", "9"), -EINVAL);
	assert_non_null(strstr(err, "--io-threads"));
	assert_int_equal(PARSE("--io-threads=-1"), -EINVAL);
	assert_int_equal(PARSE("--io-threads", "2x"), -EINVAL);
	assert_int_equal(PARSE("--io-threads", ""), -EINVAL);
	assert_int_equal(PARSE("--io-threads"), -EINVAL);
	assert_non_null(strstr(err, "--io-threads needs a value"));
	assert_int_equal(PARSE("--cpus", "65"), -EINVAL);
	assert_int_equal(PARSE("--cpus", "-1"), -EINVAL);
	assert_int_equal(PARSE("--cpus", "2x"), -EINVAL);
	assert_int_equal(PARSE("--cpus", ""), -EINVAL);
	assert_int_equal(PARSE("--memory", "0"), -EINVAL);
	assert_int_equal(PARSE("--memory", "15"), -EINVAL);
	assert_int_equal(PARSE("--memory", "99999999999999999999999"), -EINVAL);
	assert_int_equal(PARSE("--memory", "2000000"), -EINVAL);
	assert_non_null(strstr(err, "MiB"));
	assert_int_equal(PARSE("--memory"), -EINVAL);
	assert_non_null(strstr(err, "needs a value"));
}

static void test_unknown_and_misc(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--frobnicate"), -EINVAL);
	assert_non_null(strstr(err, "unknown option"));
	assert_int_equal(PARSE("--kernelx=1"), -EINVAL);
	assert_int_equal(PARSE("stray"), -EINVAL);
	assert_int_equal(PARSE("--console", "tcp:1"), -EINVAL);
	assert_int_equal(PARSE("--console", "file:"), -EINVAL);
	assert_int_equal(PARSE("--initrd", "i"), -EINVAL);
	assert_int_equal(PARSE("--kernel", "k", "--"), -EINVAL);
	assert_int_equal(PARSE("--help"), 0);
	assert_true(opts.help);
	char *big = malloc(5000);
	memset(big, 'x', 4999);
	big[4999] = '\0';
	assert_int_equal(PARSE("--kernel", "k", "--cmdline", big), -EINVAL);
	assert_non_null(strstr(err, "over the limit"));
	free(big);
}

static void test_pmem(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--pmem", "/l.erofs,ro", "--pmem=/s.img"), 0);
	assert_int_equal(opts.nr_pmems, 2);
	assert_string_equal(opts.pmems[0].path, "/l.erofs");
	assert_true(opts.pmems[0].read_only);
	assert_string_equal(opts.pmems[1].path, "/s.img");
	assert_false(opts.pmems[1].read_only);
	assert_int_equal(PARSE("--pmem", ",ro"), -EINVAL);
	assert_non_null(strstr(err, "--pmem needs a path"));
	assert_int_equal(PARSE("--pmem", "/a,rw"), -EINVAL);
	assert_non_null(strstr(err, "unknown pmem option 'rw'"));
	assert_int_equal(PARSE("--pmem"), -EINVAL);
}

static void test_disks(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--disk", "/a.img", "--disk", "/b.img,ro,serial=DISK2"), 0);
	assert_int_equal(opts.nr_disks, 2);
	assert_string_equal(opts.disks[0].path, "/a.img");
	assert_false(opts.disks[0].read_only);
	assert_null(opts.disks[0].serial);
	assert_true(opts.disks[1].read_only);
	assert_string_equal(opts.disks[1].serial, "DISK2");
	assert_int_equal(PARSE("--disk", ",ro"), -EINVAL);
	assert_int_equal(PARSE("--disk", "/a,rw"), -EINVAL);
	assert_int_equal(PARSE("--disk", "/a,serial=123456789012345678901"), -EINVAL);
	assert_int_equal(PARSE("--disk", "/a,serial=12345678901234567890"), 0);
}

static void test_shares(void **state)
{
	assert_int_equal(PARSE("--share", "/srv/a:/mnt/a", "--share=/b:/mnt/b,ro", "--", "ls"), 0);
	assert_int_equal(opts.nr_shares, 2);
	assert_string_equal(opts.shares[0].host, "/srv/a");
	assert_string_equal(opts.shares[0].guest, "/mnt/a");
	assert_false(opts.shares[0].read_only);
	assert_string_equal(opts.shares[1].guest, "/mnt/b");
	assert_true(opts.shares[1].read_only);
	assert_int_equal(PARSE("--share", "/a:/b"), -EINVAL); /* no command */
	assert_non_null(strstr(err, "--share needs a command"));
	assert_int_equal(PARSE("--share", "/a", "--", "ls"), -EINVAL);
	assert_int_equal(PARSE("--share", ":/b", "--", "ls"), -EINVAL);
	assert_int_equal(PARSE("--share", "/a:rel", "--", "ls"), -EINVAL);
	assert_int_equal(PARSE("--share", "/a:/b,rw", "--", "ls"), -EINVAL);
	assert_non_null(strstr(err, "share option"));
}

/* --rootfs DIR: CMD in a container on DIR; its spec (shim/run_spec.c). */
static void test_rootfs(void **state)
{
	char *argv[] = {"/bin/sh", "-c", "echo \"hi\""};
	cJSON *b, *spec, *proc, *o;
	char *text;

	assert_int_equal(PARSE("--rootfs", "/srv/root", "--", "ls"), 0);
	assert_string_equal(opts.rootfs, "/srv/root");
	assert_int_equal(PARSE("--rootfs=/r", "--share", "/a:/b", "--", "ls"), 0);
	assert_int_equal(PARSE("--rootfs", "/r"), -EINVAL);
	assert_non_null(strstr(err, "--rootfs needs a command"));
	assert_int_equal(PARSE("--rootfs=", "--", "ls"), -EINVAL);
	assert_int_equal(PARSE("--rootfs"), -EINVAL);

	assert_null(run_container_spec(argv, 0, false, NULL));
	b = run_container_body(argv, 3, true, "vt100", RUN_ROOTFS_GUEST);
	assert_non_null(b);
	assert_string_equal(cJSON_GetObjectItem(b, "id")->valuestring, RUN_CONTAINER_ID);
	text = cJSON_PrintUnformatted(cJSON_GetObjectItem(b, "layers"));
	assert_string_equal(text, "[{\"path\":\"" RUN_ROOTFS_GUEST "\"}]");
	cJSON_free(text);
	assert_null(cJSON_GetObjectItem(b, "scratch")); /* writes go to guest memory */
	spec = cJSON_GetObjectItem(b, "spec");
	assert_string_equal(cJSON_GetObjectItem(spec, "ociVersion")->valuestring, "1.0.0");
	proc = cJSON_GetObjectItem(spec, "process");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(proc, "terminal")));
	/* argv exactly as given, no shell added */
	text = cJSON_PrintUnformatted(cJSON_GetObjectItem(proc, "args"));
	assert_string_equal(text, "[\"/bin/sh\",\"-c\",\"echo \\\"hi\\\"\"]");
	cJSON_free(text);
	text = cJSON_PrintUnformatted(cJSON_GetObjectItem(proc, "env"));
	assert_non_null(strstr(text, "\"TERM=vt100\""));
	cJSON_free(text);
	/* the VM's network: no network namespace */
	text = cJSON_PrintUnformatted(cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "linux"),
							  "namespaces"));
	assert_null(strstr(text, "network"));
	assert_non_null(strstr(text, "\"pid\""));
	cJSON_free(text);
	o = cJSON_GetArrayItem(cJSON_GetObjectItem(spec, "mounts"), 1);
	assert_string_equal(cJSON_GetObjectItem(o, "destination")->valuestring, "/dev");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "options")), 4);
	cJSON_Delete(b);
	spec = run_container_spec(argv, 1, false, NULL);
	text = cJSON_PrintUnformatted(spec);
	assert_non_null(strstr(text, "\"terminal\":false"));
	assert_non_null(strstr(text, "\"TERM=xterm\""));
	cJSON_free(text);
	cJSON_Delete(spec);
}

/* The command goes over the bridge: the kernel command line only starts the agent. */
static void test_nets(void **state)
{
	const char *ok[] = {
	    "run", "--net", "user",
	    "--net=tap=tap0,mac=02:00:00:00:00:09,ip=10.0.0.2/24,gw=10.0.0.1,mtu=9000", "--", "true"};
	cJSON *j;
	char *txt;

	assert_int_equal(parse(6, ok), 0);
	assert_int_equal(opts.nr_nets, 2);
	assert_int_equal(run_net_params(opts.nets[1], 1, &j, err, sizeof(err)), 0);
	txt = cJSON_PrintUnformatted(j);
	assert_string_equal(txt, "{\"id\":\"net1\",\"backend\":\"tap\",\"tap\":\"tap0\","
				 "\"mac\":\"02:00:00:00:00:09\",\"addresses\":[\"10.0.0.2/24\"],"
				 "\"gateway\":\"10.0.0.1\",\"mtu\":9000}");
	free(txt);
	cJSON_Delete(j);
	/* Each bad spec is refused at parse time, naming what is wrong. */
	static const struct {
		const char *spec, *says;
	} bad[] = {
	    {"", "backend"},
	    {"vde", "'vde' is not understood"},
	    {"user,user", "'user' is not understood"},
	    {"tap", "'tap' is not understood"},
	    {"tap=", "tap:"},
	    {"tap=t,mac=01:00:00:00:00:01", "mac:"},
	    {"tap=t,ip=10.0.0.1", "addresses[0]"},
	    {"tap=t,gw=10.0.0.1/8", "gateway"},
	    {"tap=t,mtu=9x", "mtu must be a number"},
	    {"tap=t,mtu=20", "mtu:"},
	    {"tap=t,speed=10", "'speed' is not understood"},
	    {"user,ip=fd00::1/64", "IPv4 address"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *a[] = {"run", "--net", bad[i].spec};

		assert_int_equal(parse(3, a), -EINVAL);
		if (!strstr(err, bad[i].says))
			fail_msg("--net %s: '%s' does not say '%s'", bad[i].spec, err, bad[i].says);
	}
}

static void test_guest_command_cmdline(void **state)
{
	char *c;

	(void)state;
	assert_int_equal(PARSE("--cmdline", "quiet", "--", "sh", "-c", "echo \"it's\""), 0);
	c = run_build_cmdline(&opts);
	assert_non_null(c);
	assert_non_null(strstr(c, " quiet -- /init bridge"));
	assert_null(strstr(c, "echo"));
	assert_int_equal(c[strlen(c) - 1], 'e'); /* nothing after "bridge" */
	free(c);
	/* No command: no agent, the initrd's /init runs on its own. */
	assert_int_equal(PARSE("--cmdline", "quiet"), 0);
	c = run_build_cmdline(&opts);
	assert_non_null(c);
	assert_null(strstr(c, "--"));
	free(c);
	/* Arguments of any length and content: none of it is on the command line. */
	char *big = malloc(3000);
	memset(big, 'y', 2999);
	big[2999] = '\0';
	assert_int_equal(PARSE("--", "echo", big), 0);
	c = run_build_cmdline(&opts);
	assert_non_null(c);
	free(c);
	free(big);
	/* --cmdline at its limit plus the bridge word: over, and said so. */
	big = malloc(2048);
	memset(big, 'z', 2040);
	big[2040] = '\0';
	assert_int_equal(PARSE("--kernel", "k", "--cmdline", big, "--", "true"), 0);
	assert_null(run_build_cmdline(&opts));
	free(big);
}

static void test_console_default_follows_the_command(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--kernel", "k"), 0);
	assert_int_equal(opts.console, CONSOLE_STDIO);
	/* stdout carries the command's output: the console steps aside to stderr. */
	assert_int_equal(PARSE("--", "uname", "-r"), 0);
	assert_int_equal(opts.console, CONSOLE_STDERR);
	/* An explicit choice wins, in either order. */
	assert_int_equal(PARSE("--console", "stdio", "--", "uname"), 0);
	assert_int_equal(opts.console, CONSOLE_STDIO);
	assert_int_equal(PARSE("--console=none", "--", "uname"), 0);
	assert_int_equal(opts.console, CONSOLE_NONE);
	assert_int_equal(PARSE("--console", "stderr"), 0);
	assert_int_equal(opts.console, CONSOLE_STDERR);
	assert_int_equal(PARSE("--console", "stdout"), -EINVAL);
	assert_non_null(strstr(err, "stderr"));
}

static void test_tty_options(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--", "sh"), 0);
	assert_int_equal(opts.tty, RUN_TTY_AUTO);
	assert_int_equal(PARSE("--tty", "--", "sh"), 0);
	assert_int_equal(opts.tty, RUN_TTY_ON);
	assert_int_equal(PARSE("--tty", "--no-tty", "--", "sh"), 0);
	assert_int_equal(opts.tty, RUN_TTY_OFF); /* the last one wins */
	/* After "--" they belong to the command. */
	assert_int_equal(PARSE("--", "sh", "--tty"), 0);
	assert_int_equal(opts.tty, RUN_TTY_AUTO);
	assert_int_equal(opts.guest_argc, 2);
	/* Without a command they mean nothing: refused rather than ignored. */
	assert_int_equal(PARSE("--tty"), -EINVAL);
	assert_non_null(strstr(err, "--tty"));
	assert_int_equal(PARSE("--no-tty", "--kernel", "k"), -EINVAL);
	assert_int_equal(PARSE("--tty=1", "--", "sh"), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults_and_values),
	    cmocka_unit_test(test_firmware),
	    cmocka_unit_test(test_efi_form),
	    cmocka_unit_test(test_bad_counts),
	    cmocka_unit_test(test_unknown_and_misc),
	    cmocka_unit_test(test_disks), cmocka_unit_test(test_pmem),
	    cmocka_unit_test(test_shares), cmocka_unit_test(test_rootfs),
	    cmocka_unit_test(test_nets),
	    cmocka_unit_test(test_guest_command_cmdline),
	    cmocka_unit_test(test_console_default_follows_the_command),
	    cmocka_unit_test(test_tty_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
