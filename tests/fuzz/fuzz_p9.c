/*
 * The whole 9P message path (codec and operations) over a scratch share:
 * the input is a sequence of messages, each [type:1][len:2][body:len], sent
 * after Tversion, Tattach(fid 0) and a few open fids, with the header the fuzzer chose the
 * type of (and, when type has bit 0 set, a raw header from the body). The
 * share is emptied before each input; a canary file beside it must never
 * change (confinement), and the server must answer every message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/p9_test_util.h"

static char dir[64], share[96], canary[160];
static struct p9t c;

static void check_canary(void)
{
	char buf[16] = "";
	struct stat st;
	int fd = open(canary, O_RDONLY | O_NOFOLLOW);

	if (fd < 0 || read(fd, buf, sizeof(buf)) != 6 || memcmp(buf, "secret", 6) ||
	    fstat(fd, &st) || st.st_nlink != 1 || (st.st_mode & 07777) != 0644)
		abort();
	close(fd);
}

static int rm_inside(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (ftw->level > 0)
		remove(path);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p9_share_config cfg = {0};
	static const char *const allowed[] = {"a", "b", "d"};

	if (!dir[0]) {
		if (p9t_tree(dir, share))
			abort();
		snprintf(canary, sizeof(canary), "%s/outside/secret", dir);
		c.req = malloc(P9T_BUF);
		c.resp = malloc(P9T_BUF);
		if (!c.req || !c.resp)
			abort();
	}
	nftw(share, rm_inside, 16, FTW_DEPTH | FTW_PHYS);
	{
		char p[160];

		snprintf(p, sizeof(p), "%s/a", share);
		(void)!symlink("../outside", p);
		snprintf(p, sizeof(p), "%s/b", share);
		(void)!symlink("../outside/secret", p);
		snprintf(p, sizeof(p), "%s/d", share);
		(void)!mkdir(p, 0755);
	}
	cfg.path = share;
	if (size && (data[0] & 0x80)) {
		cfg.read_only = data[0] & 1;
		cfg.allowed_names = allowed;
		cfg.nr_allowed = data[0] & 2 ? 3 : 0;
		cfg.max_fids = 16;
		data++;
		size--;
	}
	if (p9_server_create(&cfg, &c.s))
		abort();
	/* Fids ready to use: 0 the root, 1 an open file in d, 2 the root open for readdir. */
	if (p9t_version(&c, 16384, "9P2000.L") || p9t_attach(&c, 0) ||
	    p9t_walk(&c, 0, 1, "d") != 1 || p9t_walk(&c, 0, 2, "") != 0)
		abort();
	if (!cfg.read_only && p9t_lcreate(&c, 1, "f", O_RDWR, 0644))
		abort();
	if (p9t_lopen(&c, 2, O_RDONLY))
		abort();
	while (size >= 3) {
		uint8_t type = data[0];
		size_t len = data[1] | (size_t)data[2] << 8;

		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		if (type & 1) {
			/* Raw: the body is the whole message, header included. */
			if (p9t_raw(&c, data, len) <= -1000)
				abort();
		} else {
			struct p9_wr *w = p9t_begin(&c, type);

			memcpy(p9_put_space(w, len), data, len);
			if (p9t_send(&c) <= -1000)
				abort(); /* unanswered or malformed answer */
		}
		data += len;
		size -= len;
	}
	p9_server_destroy(c.s);
	c.s = NULL;
	check_canary();
	return 0;
}
