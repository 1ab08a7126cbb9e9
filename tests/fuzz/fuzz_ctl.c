/*
 * Control protocol input: arbitrary bytes from the parent, fed in two pieces
 * to exercise the line reader across reads, with a small line limit so the
 * overflow path is reached. Output goes to /dev/null.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "shim/ctl.h"

static struct ctl_req *held;

static void h_sync(void *opaque, struct ctl_req *req)
{
	char err[CTL_ERRLEN];
	const char *s;
	uint64_t u;
	bool b;
	const cJSON *o;
	size_t n;

	/* Exercise the helpers on whatever params came. */
	if (ctl_param_str(req->params, "s", true, &s, err) == -EINVAL ||
	    ctl_param_u64(req->params, "u", false, 1, 64, &u, err) == -EINVAL ||
	    ctl_param_bool(req->params, "b", false, &b, err) == -EINVAL ||
	    ctl_param_strv(req->params, "v", false, 4, &o, &n, err) == -EINVAL ||
	    ctl_param_obj(req->params, "o", false, &o, err) == -EINVAL) {
		ctl_req_bad_params(req, err);
		return;
	}
	ctl_req_result(req, NULL);
}

/* Keeps at most one request pending, answering the previous one. */
static void h_defer(void *opaque, struct ctl_req *req)
{
	if (held)
		ctl_req_result(held, NULL);
	held = req;
}

static int gate(void *opaque, const struct ctl_method *m, char *msg, size_t len)
{
	return m->name[0] == 'g' ? CTL_ERR_WRONG_STATE : 0;
}

static const struct ctl_method methods[] = {
    {"a", h_sync, 0, 0},
    {"d", h_defer, 0, 0},
    {"g", h_sync, 0, 0},
    {NULL, NULL, 0, 0},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int devnull = -1;
	struct ctl_config cfg = {.methods = methods, .gate = gate, .line_max = 256};
	struct ctl *ctl;
	size_t cut = size ? data[0] % (size + 1) : 0;

	if (devnull < 0)
		devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	cfg.out_fd = devnull;
	if (ctl_create(&ctl, &cfg) < 0)
		return 0;
	ctl_feed(ctl, (const char *)data, cut);
	ctl_feed(ctl, (const char *)data + cut, size - cut);
	held = NULL; /* ctl_destroy answers and frees it */
	ctl_destroy(ctl);
	return 0;
}
