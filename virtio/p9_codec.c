/*
 * 9P wire codec: bounds-checked little-endian readers and writers over one
 * message, name checks and qids. A read past the end or a write past the
 * capacity sets err and never touches memory outside the buffer.
 */
#include "p9_priv.h"

#include <errno.h>
#include <string.h>

/* ---- Reading -------------------------------------------------------------------------------- */

const uint8_t *p9_get_bytes(struct p9_rd *r, size_t n)
{
	const uint8_t *p;

	if (r->err || r->off > r->len || n > r->len - r->off) {
		r->err = true;
		return NULL;
	}
	p = r->p + r->off;
	r->off += n;
	return p;
}

static uint64_t get_le(struct p9_rd *r, int n)
{
	const uint8_t *p = p9_get_bytes(r, n);
	uint64_t v = 0;

	if (!p)
		return 0;
	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

uint8_t p9_get_u8(struct p9_rd *r)
{
	return get_le(r, 1);
}

uint16_t p9_get_u16(struct p9_rd *r)
{
	return get_le(r, 2);
}

uint32_t p9_get_u32(struct p9_rd *r)
{
	return get_le(r, 4);
}

uint64_t p9_get_u64(struct p9_rd *r)
{
	return get_le(r, 8);
}

struct p9_str p9_get_str(struct p9_rd *r)
{
	struct p9_str s = {"", 0};
	uint16_t len = p9_get_u16(r);
	const uint8_t *p = p9_get_bytes(r, len);

	if (p) {
		s.s = (const char *)p;
		s.len = len;
	}
	return s;
}

bool p9_rd_done(const struct p9_rd *r)
{
	return !r->err && r->off == r->len;
}

/* ---- Writing -------------------------------------------------------------------------------- */

uint8_t *p9_put_space(struct p9_wr *w, size_t n)
{
	uint8_t *p;

	if (w->err || w->off > w->cap || n > w->cap - w->off) {
		w->err = true;
		return NULL;
	}
	p = w->p + w->off;
	w->off += n;
	return p;
}

static void put_le(struct p9_wr *w, uint64_t v, int n)
{
	uint8_t *p = p9_put_space(w, n);

	if (!p)
		return;
	for (int i = 0; i < n; i++, v >>= 8)
		p[i] = v & 0xff;
}

void p9_put_u8(struct p9_wr *w, uint8_t v)
{
	put_le(w, v, 1);
}

void p9_put_u16(struct p9_wr *w, uint16_t v)
{
	put_le(w, v, 2);
}

void p9_put_u32(struct p9_wr *w, uint32_t v)
{
	put_le(w, v, 4);
}

void p9_put_u64(struct p9_wr *w, uint64_t v)
{
	put_le(w, v, 8);
}

void p9_put_str(struct p9_wr *w, const char *s, size_t len)
{
	uint8_t *p;

	if (len > UINT16_MAX) {
		w->err = true;
		return;
	}
	p9_put_u16(w, len);
	p = p9_put_space(w, len);
	if (p && len)
		memcpy(p, s, len);
}

void p9_put_qid(struct p9_wr *w, const struct p9_qid *q)
{
	p9_put_u8(w, q->type);
	p9_put_u32(w, q->version);
	p9_put_u64(w, q->path);
}

size_t p9_build_rlerror(uint8_t *out, size_t cap, uint16_t tag, uint32_t ecode)
{
	struct p9_wr w = {.p = out, .cap = cap};

	p9_put_u32(&w, P9_HDR_SIZE + 4);
	p9_put_u8(&w, P9_RLERROR);
	p9_put_u16(&w, tag);
	p9_put_u32(&w, ecode);
	return w.err ? 0 : w.off;
}

size_t p9_build_rflush(uint8_t *out, size_t cap, uint16_t tag)
{
	struct p9_wr w = {.p = out, .cap = cap};

	p9_put_u32(&w, P9_HDR_SIZE);
	p9_put_u8(&w, P9_TFLUSH + 1);
	p9_put_u16(&w, tag);
	return w.err ? 0 : w.off;
}

/* ---- Names and qids ------------------------------------------------------------------------- */

bool p9_utf8_valid(const char *str, size_t len)
{
	const uint8_t *s = (const uint8_t *)str;
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i];
		uint32_t cp;
		int n;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n > (int)(len - i - 1))
			return false;
		for (int k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates, past U+10FFFF. */
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

int p9_name_check(struct p9_str n, char *buf)
{
	if (n.len == 0)
		return -EINVAL;
	if (n.len > P9_NAME_MAX)
		return -ENAMETOOLONG;
	if (memchr(n.s, '/', n.len) || memchr(n.s, '\0', n.len))
		return -EINVAL;
	if ((n.len == 1 && n.s[0] == '.') || (n.len == 2 && n.s[0] == '.' && n.s[1] == '.'))
		return -EINVAL;
	if (!p9_utf8_valid(n.s, n.len))
		return -EILSEQ;
	memcpy(buf, n.s, n.len);
	buf[n.len] = '\0';
	return 0;
}

void p9_qid_from_stat(const struct stat *st, struct p9_qid *q)
{
	q->type = S_ISDIR(st->st_mode) ? P9_QTDIR : S_ISLNK(st->st_mode) ? P9_QTSYMLINK : P9_QTFILE;
	q->version = 0;
	/* Inode numbers are unique within one filesystem; mounts beneath the root
	 * (allow_xdev) get the device folded into the high bits. */
	q->path = (uint64_t)st->st_ino ^ ((uint64_t)st->st_dev << 48);
}
