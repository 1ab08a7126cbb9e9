/*
 * The 9P server against malformed messages: every one gets an Rlerror with
 * the right errno and the server keeps serving. Also the codec primitives,
 * names, UTF-8, msize negotiation, the fid bound and plain file I/O.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/p9_test_util.h"

struct fx {
	char dir[64], share[96];
	struct p9t c;
};

static int setup_cfg(void **state, bool ro, int max_fids)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct p9_share_config cfg = {.read_only = ro, .max_fids = max_fids};

	assert_non_null(fx);
	assert_int_equal(p9t_tree(fx->dir, fx->share), 0);
	cfg.path = fx->share;
	assert_int_equal(p9t_init(&fx->c, &cfg), 0);
	assert_int_equal(p9t_version(&fx->c, 65536, "9P2000.L"), 0);
	assert_int_equal(p9t_attach(&fx->c, 1), 0);
	*state = fx;
	return 0;
}

static int setup(void **state)
{
	return setup_cfg(state, false, 0);
}

static int setup_few_fids(void **state)
{
	return setup_cfg(state, false, 4);
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	p9t_fini(&fx->c);
	p9t_tree_remove(fx->dir);
	free(fx);
	return 0;
}

/* The server still answers a plain request after whatever came before. */
static void assert_alive(struct p9t *c)
{
	struct p9_wr *w = p9t_begin(c, P9_TGETATTR);

	p9_put_u32(w, 1);
	p9_put_u64(w, 0x7ff);
	assert_int_equal(p9t_send(c), 0);
	assert_int_equal(c->rlen, 7 + 8 + 13 + 3 * 4 + 15 * 8);
}

static void test_codec_reader_bounds(void **state)
{
	uint8_t buf[3] = {1, 2, 3};
	struct p9_rd r = {.p = buf, .len = 3};
	struct p9_str s;

	assert_int_equal(p9_get_u16(&r), 0x0201);
	assert_int_equal(p9_get_u32(&r), 0); /* short: error, zero */
	assert_true(r.err);
	r = (struct p9_rd){.p = buf, .len = 3};
	s = p9_get_str(&r); /* length 0x0201 > what is left */
	assert_true(r.err);
	assert_int_equal(s.len, 0);
	assert_null(p9_get_bytes(&r, 1));
}

static void test_codec_writer_bounds(void **state)
{
	uint8_t buf[6];
	struct p9_wr w = {.p = buf, .cap = sizeof(buf)};

	p9_put_u32(&w, 7);
	assert_false(w.err);
	p9_put_str(&w, "abc", 3);
	assert_true(w.err);
	assert_int_equal(p9_build_rlerror(buf, sizeof(buf), 1, 5), 0);
}

static void test_names(void **state)
{
	char buf[P9_NAME_MAX + 1], longname[300];

	assert_int_equal(p9_name_check((struct p9_str){"ok", 2}, buf), 0);
	assert_string_equal(buf, "ok");
	assert_int_equal(p9_name_check((struct p9_str){"", 0}, buf), -EINVAL);
	assert_int_equal(p9_name_check((struct p9_str){".", 1}, buf), -EINVAL);
	assert_int_equal(p9_name_check((struct p9_str){"..", 2}, buf), -EINVAL);
	assert_int_equal(p9_name_check((struct p9_str){"a/b", 3}, buf), -EINVAL);
	assert_int_equal(p9_name_check((struct p9_str){"a\0b", 3}, buf), -EINVAL);
	assert_int_equal(p9_name_check((struct p9_str){"\xff", 1}, buf), -EILSEQ);
	assert_int_equal(p9_name_check((struct p9_str){"\xc0\xaf", 2}, buf),
			 -EILSEQ); /* overlong '/' */
	assert_int_equal(p9_name_check((struct p9_str){"\xed\xa0\x80", 3}, buf), -EILSEQ);
	assert_int_equal(p9_name_check((struct p9_str){"\xe2\x82", 2}, buf), -EILSEQ); /* cut */
	assert_int_equal(p9_name_check((struct p9_str){"caf\xc3\xa9", 5}, buf), 0);
	memset(longname, 'a', sizeof(longname));
	assert_int_equal(p9_name_check((struct p9_str){longname, 256}, buf), -ENAMETOOLONG);
	assert_int_equal(p9_name_check((struct p9_str){longname, 255}, buf), 0);
}

static void test_bad_framing(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;
	uint8_t m[64] = {0};

	/* Shorter than a header. */
	assert_int_equal(p9t_raw(c, m, 0), -EINVAL);
	assert_int_equal(p9t_raw(c, m, 6), -EINVAL);
	/* Size field disagreeing with the buffer, both ways. */
	m[0] = 20;
	m[4] = P9_TCLUNK;
	assert_int_equal(p9t_raw(c, m, 11), -EINVAL);
	m[0] = 5;
	assert_int_equal(p9t_raw(c, m, 11), -EINVAL);
	/* Unknown and R-types. */
	m[0] = 7;
	m[4] = 200;
	assert_int_equal(p9t_raw(c, m, 7), -EOPNOTSUPP);
	m[4] = P9_TCLUNK + 1;
	assert_int_equal(p9t_raw(c, m, 7), -EOPNOTSUPP);
	m[4] = P9_TAUTH;
	assert_int_equal(p9t_raw(c, m, 7), -EOPNOTSUPP);
	/* A known type with a truncated body, and with trailing bytes. */
	m[4] = P9_TCLUNK;
	m[0] = 9;
	assert_int_equal(p9t_raw(c, m, 9), -EINVAL);
	p9t_begin(c, P9_TCLUNK);
	p9_put_u32(&c->w, 1);
	p9_put_u8(&c->w, 0);
	assert_int_equal(p9t_send(c), -EINVAL);
	assert_alive(c);
}

static void test_version(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;
	struct p9_str v;

	assert_int_equal(p9t_version(c, 100, "9P2000.L"), -EINVAL);
	assert_int_equal(p9t_version(c, 0xffffffff, "9P2000.L"), 0);
	assert_int_equal(p9_get_u32(&c->r), P9_MSIZE_MAX);
	assert_int_equal(p9t_version(c, 8192, "9P2000.u"), 0);
	assert_int_equal(p9_get_u32(&c->r), 8192);
	v = p9_get_str(&c->r);
	assert_memory_equal(v.s, "unknown", 7);
	/* A new session forgot fid 1. */
	assert_int_equal(p9_server_nr_fids(c->s), 0);
	assert_int_equal(p9t_fid_op(c, P9_TCLUNK, 1), -EBADF);
	/* Reads are clipped to the msize. */
	assert_int_equal(p9t_attach(c, 1), 0);
	assert_int_equal(p9t_lcreate(c, 1, "big", O_RDWR, 0644), 0);
	{
		static uint8_t data[20000], back[20000];

		memset(data, 0x5a, sizeof(data));
		assert_int_equal(p9t_write(c, 1, 0, data, 8000), 8000);
		assert_int_equal(p9t_write(c, 1, 8000, data, 8000), 8000);
		assert_int_equal(p9t_read(c, 1, 0, 20000, back, sizeof(back)), 8192 - 11);
		/* A message larger than the msize is refused whole. */
		assert_int_equal(p9t_write(c, 1, 0, data, 20000), -EMSGSIZE);
	}
}

static void test_fids(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;
	const char *names[P9_MAXWELEM + 1];

	/* Unknown fid, fid in use, NOFID. */
	assert_int_equal(p9t_fid_op(c, P9_TCLUNK, 99), -EBADF);
	assert_int_equal(p9t_attach(c, 1), -EEXIST);
	assert_int_equal(p9t_attach(c, P9_NOFID), -EBADF);
	assert_int_equal(p9t_walk(c, 77, 2, "x"), -EBADF);
	assert_int_equal(p9t_mkdir(c, 1, "d"), 0);
	assert_int_equal(p9t_walk(c, 1, 1, ""), 0); /* clone onto itself: nothing */
	assert_int_equal(p9t_walk(c, 1, 2, ""), 0);
	assert_int_equal(p9t_walk(c, 1, 2, "d"), -EEXIST);
	/* More than 16 names. */
	for (int i = 0; i <= P9_MAXWELEM; i++)
		names[i] = "d";
	assert_int_equal(p9t_walkv(c, 1, 3, P9_MAXWELEM + 1, names), -EINVAL);
	/* A partial walk answers the qids it did and makes no fid. */
	assert_int_equal(p9t_walk(c, 1, 3, "d/nothere"), 1);
	assert_int_equal(p9t_fid_op(c, P9_TCLUNK, 3), -EBADF);
	assert_int_equal(p9t_walk(c, 1, 3, "nothere/d"), -ENOENT);
	/* Walk from a file. */
	assert_int_equal(p9t_walk(c, 1, 4, ""), 0);
	assert_int_equal(p9t_lcreate(c, 4, "f", O_RDWR, 0644), 0);
	assert_int_equal(p9t_walk(c, 4, 5, "x"), -ENOTDIR);
	/* I/O on fids that are not open, open twice, a directory. */
	assert_int_equal(p9t_walk(c, 1, 6, "f"), 1);
	assert_int_equal(p9t_write(c, 6, 0, "x", 1), -EBADF);
	assert_int_equal(p9t_lopen(c, 6, O_RDONLY), 0);
	assert_int_equal(p9t_lopen(c, 6, O_RDONLY), -EBUSY);
	assert_int_equal(p9t_lopen(c, 2, O_RDWR), -EISDIR);
	assert_int_equal(p9t_lopen(c, 2, O_RDONLY), 0);
	{
		char b[8];

		assert_int_equal(p9t_read(c, 2, 0, 8, b, sizeof(b)), -EISDIR);
		assert_int_equal(p9t_read(c, 6, 1ULL << 63, 8, b, sizeof(b)), -EINVAL);
	}
	assert_alive(c);
}

static void test_fid_bound(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;

	assert_int_equal(p9t_walk(c, 1, 2, ""), 0);
	assert_int_equal(p9t_walk(c, 1, 3, ""), 0);
	assert_int_equal(p9t_walk(c, 1, 4, ""), 0);
	assert_int_equal(p9t_walk(c, 1, 5, ""), -EMFILE);
	assert_int_equal(p9t_walk(c, 1, 4, ""), -EEXIST);
	assert_int_equal(p9t_fid_op(c, P9_TCLUNK, 4), 0);
	assert_int_equal(p9t_walk(c, 1, 5, ""), 0);
	assert_int_equal(p9_server_nr_fids(c->s), 4);
}

static void test_write_count_mismatch(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;
	struct p9_wr *w;

	assert_int_equal(p9t_lcreate(c, 1, "f", O_RDWR, 0644), 0);
	/* count says 100, 3 bytes follow. */
	w = p9t_begin(c, P9_TWRITE);
	p9_put_u32(w, 1);
	p9_put_u64(w, 0);
	p9_put_u32(w, 100);
	memcpy(p9_put_space(w, 3), "abc", 3);
	assert_int_equal(p9t_send(c), -EINVAL);
	/* count says 1, 3 bytes follow. */
	w = p9t_begin(c, P9_TWRITE);
	p9_put_u32(w, 1);
	p9_put_u64(w, 0);
	p9_put_u32(w, 1);
	memcpy(p9_put_space(w, 3), "abc", 3);
	assert_int_equal(p9t_send(c), -EINVAL);
	/* Offset + count past what a file allows. */
	assert_int_equal(p9t_write(c, 1, INT64_MAX, "a", 1), -EINVAL);
	assert_int_equal(p9t_write(c, 1, 0, "abc", 3), 3);
}

static void test_file_io(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;
	char buf[64], p[160];
	int fd;

	assert_int_equal(p9t_mkdir(c, 1, "dir"), 0);
	assert_int_equal(p9t_walk(c, 1, 2, "dir"), 1);
	assert_int_equal(p9t_lcreate(c, 2, "hello", O_RDWR, 0600), 0);
	assert_int_equal(p9t_write(c, 2, 0, "hello world", 11), 11);
	assert_int_equal(p9t_read(c, 2, 6, 64, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "world", 5);
	assert_int_equal(p9t_fid_op(c, P9_TCLUNK, 2), 0);
	snprintf(p, sizeof(p), "%s/dir/hello", fx->share);
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, 64), 11);
	close(fd);
	/* Truncate, rename, unlink, rmdir. */
	assert_int_equal(p9t_walk(c, 1, 3, "dir/hello"), 2);
	assert_int_equal(p9t_setattr(c, 3, 0x8, 0, 5), 0);
	assert_int_equal(p9t_walk(c, 1, 4, "dir"), 1);
	assert_int_equal(p9t_renameat(c, 4, "hello", 1, "moved"), 0);
	snprintf(p, sizeof(p), "%s/moved", fx->share);
	{
		struct stat st;

		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_size, 5);
	}
	assert_int_equal(p9t_unlinkat(c, 1, "dir", 0), -EISDIR);
	assert_int_equal(p9t_unlinkat(c, 1, "dir", 0x200), 0);
	assert_int_equal(p9t_unlinkat(c, 1, "moved", 0x1), -EINVAL);
	assert_int_equal(p9t_unlinkat(c, 1, "moved", 0), 0);
	assert_int_equal(access(p, F_OK), -1);
	/* Readdir of the root shows what is there. */
	assert_int_equal(p9t_lcreate(c, 3, "x", O_RDWR, 0600), -ENOTDIR);
	assert_int_equal(p9t_walk(c, 1, 5, ""), 0);
	assert_int_equal(p9t_lcreate(c, 5, "x", O_RDWR, 0600), 0);
	assert_int_equal(p9t_walk(c, 1, 6, ""), 0);
	assert_int_equal(p9t_lopen(c, 6, O_RDONLY | O_DIRECTORY), 0);
	assert_int_equal(p9t_readdir(c, 6, 0, 4096), 0);
	assert_true(c->rlen > 11 + 3 * 24);
	assert_non_null(memmem(c->resp, c->rlen, "\x01\x00x", 3));
	/* A tiny count gives no partial entry. */
	assert_int_equal(p9t_readdir(c, 6, 0, 10), 0);
	assert_int_equal(p9_get_u32(&c->r), 0);
}

static void test_xattr_and_locks(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;
	char buf[32];
	struct p9_wr *w;
	int r;

	assert_int_equal(p9t_walk(c, 1, 9, ""), 0);
	assert_int_equal(p9t_lcreate(c, 9, "f", O_RDWR, 0644), 0);
	/* set user.k = "v1" */
	assert_int_equal(p9t_walk(c, 1, 2, ""), 0);
	assert_int_equal(p9t_xattrcreate(c, 2, "user.k", 2), 0);
	assert_int_equal(p9t_write(c, 2, 0, "v1", 2), 2);
	assert_int_equal(p9t_write(c, 2, 1, "v1", 2), -EINVAL); /* past the declared size */
	r = p9t_fid_op(c, P9_TCLUNK, 2);
	if (r == -EOPNOTSUPP) {
		print_message("skip: the scratch filesystem has no user xattrs\n");
	} else {
		assert_int_equal(r, 0);
		assert_int_equal(p9t_xattrwalk(c, 1, 3, "user.k"), 0);
		assert_int_equal(p9_get_u64(&c->r), 2);
		assert_int_equal(p9t_read(c, 3, 0, 32, buf, sizeof(buf)), 2);
		assert_memory_equal(buf, "v1", 2);
		assert_int_equal(p9t_read(c, 3, 5, 32, buf, sizeof(buf)), 0);
	}
	assert_int_equal(p9t_xattrcreate(c, 1, "security.capability", 4), -EOPNOTSUPP);
	assert_int_equal(p9t_xattrcreate(c, 1, "trusted.x", 4), -EOPNOTSUPP);
	assert_int_equal(p9t_xattrcreate(c, 1, "user.big", 1 << 20), -E2BIG);
	/* Locks: two open files, a write lock on one blocks the other. */
	assert_int_equal(p9t_walk(c, 1, 4, "f"), 1);
	assert_int_equal(p9t_lopen(c, 4, O_RDWR), 0);
	assert_int_equal(p9t_walk(c, 1, 5, "f"), 1);
	assert_int_equal(p9t_lopen(c, 5, O_RDWR), 0);
	for (int fid = 4; fid <= 5; fid++) {
		w = p9t_begin(c, P9_TLOCK);
		p9_put_u32(w, fid);
		p9_put_u8(w, 1);
		p9_put_u32(w, 0);
		p9_put_u64(w, 0);
		p9_put_u64(w, 0);
		p9_put_u32(w, 42);
		p9t_str(w, "guest");
		assert_int_equal(p9t_send(c), 0);
		assert_int_equal(p9_get_u8(&c->r), fid == 4 ? 0 : 1);
	}
	w = p9t_begin(c, P9_TGETLOCK);
	p9_put_u32(w, 5);
	p9_put_u8(w, 1);
	p9_put_u64(w, 0);
	p9_put_u64(w, 0);
	p9_put_u32(w, 42);
	p9t_str(w, "guest");
	assert_int_equal(p9t_send(c), 0);
	assert_int_equal(p9_get_u8(&c->r), 1);
	/* A bad lock type. */
	w = p9t_begin(c, P9_TLOCK);
	p9_put_u32(w, 4);
	p9_put_u8(w, 9);
	p9_put_u32(w, 0);
	p9_put_u64(w, 0);
	p9_put_u64(w, 0);
	p9_put_u32(w, 42);
	p9t_str(w, "guest");
	assert_int_equal(p9t_send(c), -EINVAL);
}

static void test_statfs_fsync_flush(void **state)
{
	struct fx *fx = *state;
	struct p9t *c = &fx->c;
	struct p9_wr *w;

	assert_int_equal(p9t_fid_op(c, P9_TSTATFS, 1), 0);
	assert_int_equal(c->rlen, 7 + 4 + 4 + 8 * 6 + 4);
	assert_int_equal(p9t_lcreate(c, 1, "f", O_RDWR, 0644), 0);
	w = p9t_begin(c, P9_TFSYNC);
	p9_put_u32(w, 1);
	p9_put_u32(w, 1);
	assert_int_equal(p9t_send(c), 0);
	w = p9t_begin(c, P9_TFLUSH);
	p9_put_u16(w, 3);
	assert_int_equal(p9t_send(c), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_codec_reader_bounds),
	    cmocka_unit_test(test_codec_writer_bounds),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test_setup_teardown(test_bad_framing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_version, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fids, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fid_bound, setup_few_fids, teardown),
	    cmocka_unit_test_setup_teardown(test_write_count_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_io, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_xattr_and_locks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_statfs_fsync_flush, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
