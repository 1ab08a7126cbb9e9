/*
 * A hostile guest program for tests/e2e/test_hostile.py, run as root inside
 * a real guest (static, added to a copy of the default initrd). Each mode
 * attacks the VMM for SECONDS seconds, then exits 0; it never checks results.
 *
 *   hostile pci SECONDS     garbage through PCI config space (sysfs: the VMM's
 *                           0xCF8/0xCFC and PCI_CFG window), through the virtio
 *                           BARs (device status writes reset devices under load,
 *                           MSI-X table garbage), device by device
 *   hostile vsock SECONDS   floods the host with vsock connections to any port,
 *                           garbage and oversized frames on the bridge port
 *   hostile blk DEV SECONDS reads and writes at random offsets of DEV, flat out
 *
 * SEED (env) seeds the random choices so a run can be repeated.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng_state;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)rng_state;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Devices other than the host bridge (00.0): breaking that one ends everything at once. */
static int list_devices(char names[][64], int max)
{
	DIR *d = opendir("/sys/bus/pci/devices");
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		if (e->d_name[0] == '.' || !strcmp(e->d_name, "0000:00:00.0") ||
		    strlen(e->d_name) >= 64)
			continue;
		memcpy(names[n++], e->d_name, strlen(e->d_name) + 1);
	}
	closedir(d);
	return n;
}

static void poke_config(const char *dev, int rounds)
{
	char p[128];
	int fd;

	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/config", dev);
	fd = open(p, O_RDWR);
	if (fd < 0)
		return;
	for (int i = 0; i < rounds; i++) {
		uint32_t v = rnd();
		/* Mostly the capability area and the PCI_CFG access window; never the BARs'
		 * 0x10-0x27 more than occasionally, so the device stays somewhere. */
		off_t off = (rnd() % 8 == 0) ? 0x04 + (rnd() % 0x24) : 0x34 + (rnd() % 0xcc);

		if (pwrite(fd, &v, 1 + rnd() % 4, off) < 0) {
			/* refused: fine */
		}
	}
	close(fd);
}

static void poke_bar(const char *dev, int bar, int rounds)
{
	char p[128];
	struct stat st;
	volatile uint8_t *m;
	int fd;

	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/resource%d", dev, bar);
	fd = open(p, O_RDWR | O_SYNC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size > (16 << 20)) {
		close(fd);
		return;
	}
	m = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return;
	for (int i = 0; i < rounds; i++) {
		size_t off = rnd() % st.st_size & ~3u;

		if (rnd() % 4 == 0)
			(void)m[off];
		else if (rnd() % 2)
			*(volatile uint32_t *)(m + off) = rnd();
		else
			m[off] = (uint8_t)rnd();
		/* virtio common cfg: device status 0 (a reset) now and then. */
		if (bar == 0 && rnd() % 16 == 0)
			m[0x14] = 0;
	}
	munmap((void *)m, st.st_size);
}

static int mode_pci(double secs)
{
	char devs[32][64];
	int n = list_devices(devs, 32);
	double end = now() + secs;

	printf("hostile pci: %d devices\n", n);
	fflush(stdout);
	while (n && now() < end) {
		const char *d = devs[rnd() % n];

		poke_config(d, 64);
		poke_bar(d, 0, 256);
		poke_bar(d, 2, 64);
	}
	return 0;
}

static int vsock_dial(uint32_t port)
{
	struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = 2, .svm_port = port};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {0, 200000};

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int mode_vsock(double secs)
{
	static uint8_t junk[65536];
	double end = now() + secs;
	unsigned conns = 0, refused = 0;
	int held[256], nheld = 0;

	while (now() < end) {
		/* The bridge port (0x40000000) and the stdio ports above it, or anything. */
		uint32_t port = rnd() % 2 ? 0x40000000u + rnd() % 8 : rnd();
		int fd = vsock_dial(port);
		uint32_t hdr[4];

		if (fd < 0) {
			refused++;
			continue;
		}
		conns++;
		for (size_t i = 0; i < sizeof(junk); i += 4)
			*(uint32_t *)(junk + i) = rnd();
		/* A bridge header that claims 4 GiB, or one below its own size, or junk. */
		hdr[0] = rnd();
		hdr[1] = rnd() % 3 == 0 ? 0xffffffffu : rnd() % 3 == 0 ? 4 : rnd() % 70000;
		hdr[2] = rnd();
		hdr[3] = rnd();
		if (write(fd, hdr, sizeof(hdr)) < 0 || write(fd, junk, rnd() % sizeof(junk)) < 0) {
			/* reset by the host: fine */
		}
		/* Keep some open: connections and host fds must stay bounded. */
		if (nheld < 256 && rnd() % 2)
			held[nheld++] = fd;
		else
			close(fd);
	}
	while (nheld)
		close(held[--nheld]);
	printf("hostile vsock: %u connections, %u refused\n", conns, refused);
	return 0;
}

static int mode_blk(const char *dev, double secs)
{
	static uint8_t buf[65536] __attribute__((aligned(4096)));
	double end = now() + secs;
	int fd = open(dev, O_RDWR | O_DIRECT);
	off_t size;
	unsigned ops = 0;

	if (fd < 0) {
		perror(dev);
		return 1;
	}
	size = lseek(fd, 0, SEEK_END);
	while (size > 0 && now() < end) {
		off_t off = (off_t)(rnd() % (size / 4096)) * 4096;
		size_t len = 4096 * (1 + rnd() % 16);

		if (off + (off_t)len > size)
			len = 4096;
		if (rnd() % 2 ? pread(fd, buf, len, off) < 0 : pwrite(fd, buf, len, off) < 0) {
			/* a reset device fails requests: fine */
		}
		ops++;
	}
	close(fd);
	printf("hostile blk: %u requests\n", ops);
	return 0;
}

int main(int argc, char **argv)
{
	const char *seed = getenv("SEED");

	rng_state = seed ? strtoull(seed, NULL, 0) : (uint64_t)time(NULL);
	rng_state |= 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && !strcmp(argv[1], "pci"))
		return mode_pci(atof(argv[2]));
	if (argc == 3 && !strcmp(argv[1], "vsock"))
		return mode_vsock(atof(argv[2]));
	if (argc == 4 && !strcmp(argv[1], "blk"))
		return mode_blk(argv[2], atof(argv[3]));
	fprintf(stderr, "usage: hostile pci SECONDS | vsock SECONDS | blk DEV SECONDS\n");
	return 2;
}
