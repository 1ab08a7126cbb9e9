/*
 * gcs/net.c, the agent's NIC configuration, on the host: in a private network
 * namespace (root only; skipped otherwise) a tap stands for the guest's
 * virtio-net interface, a directory stands for /sys (class/net/<if>/address,
 * ifindex) and the rtnetlink requests go to the namespace's kernel; the
 * result is read back with ioctls and /proc/net/route. Bad bodies get
 * messages naming the field.
 *
 * The GCS's objects are not among the unit tests' library objects, so its
 * net.c and log.c are compiled into this test (as test_gcs_stacks does).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gcs/gcs.h"
#include "gcs/log.c"
#include "gcs/fileio.c"
#include "gcs/net.c"
#include "gcs/container_netns.c"

#define IFN "uvmgn0"
#define MAC "02:11:22:33:44:55"

static char root[64], resolv[96];
static int tapfd = -1;

static void put(const char *rel, const char *text)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	struct ifreq ifr = {0};
	char dir[160], idx[16];
	int s;

	if (geteuid() != 0 || unshare(CLONE_NEWNET)) {
		print_message("skip: needs root for a private network namespace\n");
		return 0;
	}
	tapfd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (tapfd < 0) {
		print_message("skip: no /dev/net/tun\n");
		return 0;
	}
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	strcpy(ifr.ifr_name, IFN);
	assert_int_equal(ioctl(tapfd, TUNSETIFF, &ifr), 0);
	s = socket(AF_INET, SOCK_DGRAM, 0);
	ifr.ifr_hwaddr.sa_family = 1; /* ARPHRD_ETHER */
	memcpy(ifr.ifr_hwaddr.sa_data, "\x02\x11\x22\x33\x44\x55", 6);
	assert_int_equal(ioctl(s, SIOCSIFHWADDR, &ifr), 0);
	close(s);
	strcpy(root, "/tmp/uvm-gcs-net-XXXXXX");
	assert_non_null(mkdtemp(root));
	snprintf(dir, sizeof(dir), "%s/class", root);
	mkdir(dir, 0755);
	snprintf(dir, sizeof(dir), "%s/class/net", root);
	mkdir(dir, 0755);
	snprintf(dir, sizeof(dir), "%s/class/net/" IFN, root);
	mkdir(dir, 0755);
	put("class/net/" IFN "/address", MAC "\n");
	snprintf(idx, sizeof(idx), "%u\n", if_nametoindex(IFN));
	put("class/net/" IFN "/ifindex", idx);
	snprintf(resolv, sizeof(resolv), "%s/resolv.conf", root);
	gcs_net_set_paths(root, resolv);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	if (tapfd >= 0)
		close(tapfd);
	if (root[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
		if (system(cmd)) {
			/* best effort */
		}
	}
	return 0;
}

static int call(const char *fn, const char *json, char *err, char *ifname)
{
	cJSON *b = cJSON_Parse(json);
	int r;

	assert_non_null(b);
	err[0] = '\0';
	if (!strcmp(fn, "add"))
		r = gcs_net_add(b, ifname, 32, err, 256);
	else if (!strcmp(fn, "update"))
		r = gcs_net_update(b, err, 256);
	else
		r = gcs_net_remove(b, err, 256);
	cJSON_Delete(b);
	return r;
}

static void if_state(char addr[32], int *mtu, bool *up)
{
	struct ifreq ifr = {0};
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	strcpy(ifr.ifr_name, IFN);
	addr[0] = '\0';
	if (ioctl(s, SIOCGIFADDR, &ifr) == 0)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr, addr, 32);
	assert_int_equal(ioctl(s, SIOCGIFMTU, &ifr), 0);
	*mtu = ifr.ifr_mtu;
	assert_int_equal(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
	*up = ifr.ifr_flags & IFF_UP;
	close(s);
}

/* The routes of IFN as "DEST/GATEWAY" hex pairs from /proc/net/route, joined. */
static void routes(char *out, size_t len)
{
	FILE *f = fopen("/proc/net/route", "r");
	char line[256], ifn[32], dst[16], gw[16];

	out[0] = '\0';
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%31s %15s %15s", ifn, dst, gw) == 3 && !strcmp(ifn, IFN))
			snprintf(out + strlen(out), len - strlen(out), "%s/%s ", dst, gw);
	fclose(f);
}

static void test_add_update_remove(void **state)
{
	char err[256], ifname[32], addr[32], rt[512], buf[256];
	int mtu;
	bool up;
	FILE *f;

	if (tapfd < 0)
		skip();
	assert_int_equal(call("add",
			      "{\"mac\":\"" MAC "\",\"mtu\":1400,\"addresses\":[\"10.9.0.2/24\"],"
			      "\"gateway\":\"10.9.0.1\",\"routes\":[{\"dst\":\"10.20.0.0/16\","
			      "\"via\":\"10.9.0.254\"}],\"dns\":[\"10.9.0.53\",\"fd00::53\"]}",
			      err, ifname),
			 0);
	assert_string_equal(ifname, IFN);
	if_state(addr, &mtu, &up);
	assert_string_equal(addr, "10.9.0.2");
	assert_int_equal(mtu, 1400);
	assert_true(up);
	routes(rt, sizeof(rt));
	/* default via 10.9.0.1, 10.20/16 via 10.9.0.254 (little-endian hex). */
	assert_non_null(strstr(rt, "00000000/0100090A"));
	assert_non_null(strstr(rt, "0000140A/FE00090A"));
	f = fopen(resolv, "r");
	assert_non_null(f);
	assert_int_equal(fread(buf, 1, sizeof(buf) - 1, f) > 0, 1);
	fclose(f);
	assert_non_null(strstr(buf, "nameserver 10.9.0.53\nnameserver fd00::53\n"));
	/* The same MAC twice. */
	assert_int_equal(call("add", "{\"mac\":\"" MAC "\"}", err, ifname), -EEXIST);
	/* A new address replaces the old; a new gateway alone keeps the other routes. */
	assert_int_equal(call("update",
			      "{\"mac\":\"" MAC "\",\"addresses\":[\"10.9.0.7/24\"],"
			      "\"gateway\":\"10.9.0.3\"}",
			      err, ifname),
			 0);
	if_state(addr, &mtu, &up);
	assert_string_equal(addr, "10.9.0.7");
	routes(rt, sizeof(rt));
	assert_non_null(strstr(rt, "00000000/0300090A"));
	assert_null(strstr(rt, "00000000/0100090A"));
	assert_non_null(strstr(rt, "0000140A/FE00090A"));
	/* Hostile or broken bodies: refused, named, nothing changed. */
	assert_int_equal(
	    call("update", "{\"mac\":\"" MAC "\",\"addresses\":[\"10.9.0.8\"]}", err, ifname),
	    -EINVAL);
	assert_non_null(strstr(err, "addresses"));
	assert_int_equal(
	    call("update", "{\"mac\":\"" MAC "\",\"routes\":[{\"via\":\"1.2.3.4\"}]}", err, ifname),
	    -EINVAL);
	assert_non_null(strstr(err, "routes[0]"));
	assert_int_equal(call("update", "{\"mac\":\"" MAC "\",\"mtu\":10}", err, ifname), -EINVAL);
	assert_non_null(strstr(err, "mtu"));
	assert_int_equal(call("update", "{\"mac\":\"" MAC "\",\"gateway\":\"nope\"}", err, ifname),
			 -EINVAL);
	assert_int_equal(call("update", "{\"mac\":5}", err, ifname), -EINVAL);
	assert_non_null(strstr(err, "mac"));
	assert_int_equal(
	    call("update", "{\"mac\":\"02:00:00:00:00:99\",\"mtu\":1500}", err, ifname), -ENOENT);
	if_state(addr, &mtu, &up);
	assert_string_equal(addr, "10.9.0.7");
	assert_int_equal(mtu, 1400);
	/* A MAC that never shows up: the wait ends at its timeout. */
	assert_int_equal(
	    call("add", "{\"mac\":\"02:00:00:00:00:98\",\"timeout_ms\":200}", err, ifname),
	    -ETIMEDOUT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_add_update_remove),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
