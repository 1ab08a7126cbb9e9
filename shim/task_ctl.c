/*
 * The daemon's side of the in-process control protocol: requests go in
 * with ctl_feed as JSON lines; answers and events come back on a
 * socketpair, read on the loop (never inside the handler that sent them).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shim/ctl.h"
#include "shim/ctl_serve.h"
#include "shim/task_priv.h"
#include "vmm/log.h"
#include "vmm/loop.h"

#define TAG "task"

struct task_ctl_wait {
	uint64_t id;
	task_ctl_cb cb;
	void *arg;
	struct task_ctl_wait *next;
};

int task_ctl_code(int c)
{
	switch (c) {
	case CTL_ERR_BAD_PARAMS:
		return TTRPC_INVALID_ARGUMENT;
	case CTL_ERR_NOT_FOUND:
		return TTRPC_NOT_FOUND;
	case CTL_ERR_WRONG_STATE:
	case CTL_ERR_BUSY:
		return TTRPC_FAILED_PRECONDITION;
	case CTL_ERR_TIMEOUT:
		return TTRPC_DEADLINE_EXCEEDED;
	case CTL_ERR_CANCELLED:
		return TTRPC_CANCELLED;
	case CTL_ERR_UNSUPPORTED:
	case CTL_ERR_UNKNOWN_METHOD:
		return TTRPC_UNIMPLEMENTED;
	case CTL_ERR_INTERNAL:
		return TTRPC_INTERNAL;
	default:
		return TTRPC_UNKNOWN;
	}
}

static void dispatch_line(struct taskd *d, const char *line, size_t len)
{
	cJSON *j = cJSON_ParseWithLength(line, len), *id, *ev, *err;
	struct task_ctl_wait **pp, *w;

	if (!j) {
		pr_err(TAG, "the control protocol sent a line that is not JSON");
		return;
	}
	ev = cJSON_GetObjectItemCaseSensitive(j, "event");
	if (cJSON_IsString(ev)) {
		task_on_event(d, ev->valuestring, cJSON_GetObjectItemCaseSensitive(j, "params"));
		goto out;
	}
	id = cJSON_GetObjectItemCaseSensitive(j, "id");
	if (!cJSON_IsNumber(id))
		goto out;
	for (pp = &d->waits; *pp; pp = &(*pp)->next)
		if ((*pp)->id == (uint64_t)id->valuedouble)
			break;
	w = *pp;
	if (!w)
		goto out;
	*pp = w->next;
	err = cJSON_GetObjectItemCaseSensitive(j, "error");
	if (w->cb) {
		if (err) {
			cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
			cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");

			w->cb(d, w->arg, NULL,
			      cJSON_IsNumber(code) ? code->valueint : CTL_ERR_INTERNAL,
			      cJSON_IsString(msg) ? msg->valuestring : "error");
		} else {
			w->cb(d, w->arg, cJSON_GetObjectItemCaseSensitive(j, "result"), 0, NULL);
		}
	} else if (err) {
		char *s = cJSON_PrintUnformatted(err);

		pr_warn(TAG, "%s", s ? s : "a request failed");
		free(s);
	}
	free(w);
out:
	cJSON_Delete(j);
}

static void on_ctl(void *opaque, uint32_t events)
{
	struct taskd *d = opaque;
	char buf[LOOP_READ_BUF];
	ssize_t n = read(d->ctl_rd, buf, sizeof(buf));
	size_t start = 0;

	if (n <= 0)
		return;
	if (d->line_len + n > d->line_cap) {
		size_t cap = d->line_cap ? d->line_cap : 4096;
		char *nb;

		while (cap < d->line_len + n)
			cap *= 2;
		nb = realloc(d->line, cap);
		if (!nb) {
			pr_err(TAG, "out of memory reading the control protocol");
			return;
		}
		d->line = nb;
		d->line_cap = cap;
	}
	memcpy(d->line + d->line_len, buf, n);
	d->line_len += n;
	for (size_t i = 0; i < d->line_len; i++)
		if (d->line[i] == '\n') {
			dispatch_line(d, d->line + start, i - start);
			start = i + 1;
		}
	memmove(d->line, d->line + start, d->line_len - start);
	d->line_len -= start;
}

int task_ctl_open(struct taskd *d)
{
	int sv[2], big = 4 << 20;

	d->ctl_rd = d->ctl_wr = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	/* serve writes its answers blocking: room for many before we read them. */
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	if (ctl_serve_embed(d->loop, sv[1], &d->serve, &d->ctl)) {
		close(sv[0]);
		close(sv[1]);
		return -EIO;
	}
	d->ctl_rd = sv[0];
	d->ctl_wr = sv[1];
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	if (loop_add(d->loop, d->ctl_rd, EPOLLIN, on_ctl, d))
		return -EIO;
	return 0;
}

void task_ctl_close(struct taskd *d)
{
	/* Requests still out end now: their callbacks answer containerd's calls (Create ...). */
	d->ctl_closing = true;
	while (d->waits) {
		struct task_ctl_wait *w = d->waits;

		d->waits = w->next;
		if (w->cb)
			w->cb(d, w->arg, NULL, CTL_ERR_CANCELLED, "the shim is exiting");
		free(w);
	}
	ctl_serve_embed_free(d->serve);
	d->serve = NULL;
	if (d->ctl_rd >= 0) {
		loop_del(d->loop, d->ctl_rd);
		close(d->ctl_rd);
		d->ctl_rd = -1;
	}
	if (d->ctl_wr >= 0)
		close(d->ctl_wr);
	d->ctl_wr = -1;
	while (d->waits) {
		struct task_ctl_wait *w = d->waits;

		d->waits = w->next;
		free(w);
	}
	free(d->line);
	d->line = NULL;
}

void task_ctl_call(struct taskd *d, const char *method, cJSON *params, task_ctl_cb cb, void *arg)
{
	cJSON *req;
	struct task_ctl_wait *w;
	char *line = NULL;

	if (d->ctl_closing || !d->ctl) {
		cJSON_Delete(params);
		if (cb)
			cb(d, arg, NULL, CTL_ERR_CANCELLED, "the shim is exiting");
		return;
	}
	req = cJSON_CreateObject();
	w = calloc(1, sizeof(*w));
	if (!req || !w)
		goto oom;
	w->id = ++d->next_id;
	w->cb = cb;
	w->arg = arg;
	cJSON_AddNumberToObject(req, "id", (double)w->id);
	cJSON_AddStringToObject(req, "method", method);
	cJSON_AddItemToObject(req, "params", params ? params : cJSON_CreateObject());
	params = NULL;
	line = cJSON_PrintUnformatted(req);
	if (!line)
		goto oom;
	pr_dbg(TAG, "-> %s", method);
	w->next = d->waits;
	d->waits = w;
	ctl_feed(d->ctl, line, strlen(line));
	ctl_feed(d->ctl, "\n", 1);
	free(line);
	cJSON_Delete(req);
	return;
oom:
	cJSON_Delete(params);
	cJSON_Delete(req);
	free(w);
	if (cb)
		cb(d, arg, NULL, CTL_ERR_INTERNAL, "out of memory");
}
