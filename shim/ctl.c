/*
 * Control protocol framing, validation, dispatch and output (see ctl.h).
 */
#include "shim/ctl.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/loop.h"

#define TAG "ctl"

struct ctl {
	int out_fd;
	const struct ctl_method *methods;
	void *opaque;
	ctl_gate_fn gate;
	ctl_release_fn release;
	size_t line_max;

	/* Line reader: only touched by the thread that feeds input. */
	char *buf;
	size_t len, cap;
	bool discarding; /* the current line went over line_max: skip to '\n' */

	/* Output and the pending list may be used from any thread. */
	pthread_mutex_t lock;
	struct ctl_req *pending;
	unsigned nr_pending;
	bool out_broken;
};

/* ---- error names ---------------------------------------------------------- */

const char *ctl_err_name(int code)
{
	switch (code) {
	case CTL_ERR_PARSE:
		return "parse_error";
	case CTL_ERR_INVALID_REQUEST:
		return "invalid_request";
	case CTL_ERR_UNKNOWN_METHOD:
		return "unknown_method";
	case CTL_ERR_BAD_PARAMS:
		return "bad_params";
	case CTL_ERR_INTERNAL:
		return "internal";
	case CTL_ERR_WRONG_STATE:
		return "wrong_state";
	case CTL_ERR_GUEST:
		return "guest_failure";
	case CTL_ERR_NOT_FOUND:
		return "not_found";
	case CTL_ERR_BUSY:
		return "busy";
	case CTL_ERR_TOO_LARGE:
		return "too_large";
	case CTL_ERR_TIMEOUT:
		return "timeout";
	case CTL_ERR_HOST:
		return "host_failure";
	case CTL_ERR_UNSUPPORTED:
		return "unsupported";
	case CTL_ERR_CANCELLED:
		return "cancelled";
	case CTL_ERR_DUPLICATE_ID:
		return "duplicate_id";
	}
	return "unknown";
}

/* ---- output --------------------------------------------------------------- */

static int write_all_iov(int fd, struct iovec *iov, int cnt)
{
	while (cnt > 0) {
		ssize_t n = writev(fd, iov, cnt);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= n;
		}
	}
	return 0;
}

/* Prints obj as one line. Caller holds ctl->lock. Consumes obj. */
static int emit_locked(struct ctl *ctl, cJSON *obj)
{
	char *text = cJSON_PrintUnformatted(obj);
	struct iovec iov[2];
	int ret;

	cJSON_Delete(obj);
	if (!text) {
		pr_err(TAG, "out of memory printing a message");
		return -ENOMEM;
	}
	if (ctl->out_broken) {
		free(text);
		return -EPIPE;
	}
	iov[0] = (struct iovec){.iov_base = text, .iov_len = strlen(text)};
	iov[1] = (struct iovec){.iov_base = "\n", .iov_len = 1};
	ret = write_all_iov(ctl->out_fd, iov, 2);
	if (ret < 0) {
		/* A parent that stopped reading is gone for good: stop trying. */
		ctl->out_broken = true;
		errno = -ret;
		pr_warn_errno(TAG, "writing to the parent failed");
	}
	free(text);
	return ret;
}

/* Builds {"id": id, key: payload}. Consumes id and payload; id NULL means JSON null. */
static cJSON *make_response(cJSON *id, const char *key, cJSON *payload)
{
	cJSON *obj = cJSON_CreateObject();

	if (!obj)
		goto fail;
	if (!id)
		id = cJSON_CreateNull();
	if (!id)
		goto fail;
	cJSON_AddItemToObject(obj, "id", id);
	id = NULL;
	if (!payload)
		goto fail;
	cJSON_AddItemToObject(obj, key, payload);
	return obj;
fail:
	cJSON_Delete(obj);
	cJSON_Delete(id);
	cJSON_Delete(payload);
	return NULL;
}

static cJSON *make_error(int code, const char *msg)
{
	cJSON *err = cJSON_CreateObject();

	if (!err)
		return NULL;
	if (!cJSON_AddNumberToObject(err, "code", code) ||
	    !cJSON_AddStringToObject(err, "message", msg)) {
		cJSON_Delete(err);
		return NULL;
	}
	return err;
}

/* An error for a line that never became a request: id is a copy or NULL. */
static void reply_error_id(struct ctl *ctl, const cJSON *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply_error_id(struct ctl *ctl, const cJSON *id, int code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	cJSON *obj;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	obj = make_response(id ? cJSON_Duplicate(id, 1) : NULL, "error", make_error(code, msg));
	pthread_mutex_lock(&ctl->lock);
	if (obj)
		emit_locked(ctl, obj);
	pthread_mutex_unlock(&ctl->lock);
}

int ctl_event(struct ctl *ctl, const char *name, cJSON *params)
{
	cJSON *obj = cJSON_CreateObject();
	int ret;

	if (!params)
		params = cJSON_CreateObject();
	if (!obj || !params || !cJSON_AddStringToObject(obj, "event", name)) {
		cJSON_Delete(obj);
		cJSON_Delete(params);
		return -ENOMEM;
	}
	cJSON_AddItemToObject(obj, "params", params);
	pthread_mutex_lock(&ctl->lock);
	ret = emit_locked(ctl, obj);
	pthread_mutex_unlock(&ctl->lock);
	return ret;
}

/* ---- requests -------------------------------------------------------------- */

static void req_unlink_locked(struct ctl *ctl, struct ctl_req *req)
{
	if (req->prev)
		req->prev->next = req->next;
	else
		ctl->pending = req->next;
	if (req->next)
		req->next->prev = req->prev;
	ctl->nr_pending--;
}

static void req_free(struct ctl_req *req)
{
	cJSON_Delete(req->id);
	cJSON_Delete(req->params);
	free(req);
}

/* Answers req with {key: payload} and frees it. Consumes payload. */
static void req_answer(struct ctl_req *req, const char *key, cJSON *payload)
{
	struct ctl *ctl = req->ctl;
	cJSON *obj;

	/* The gate opens before the parent can see the answer and send the next request. */
	if (ctl->release && req->m)
		ctl->release(ctl->opaque, req->m);
	pthread_mutex_lock(&ctl->lock);
	req_unlink_locked(ctl, req);
	obj = make_response(req->id, key, payload);
	req->id = NULL;
	if (obj)
		emit_locked(ctl, obj);
	else
		pr_err(TAG, "out of memory answering %s", req->method);
	pthread_mutex_unlock(&ctl->lock);
	req_free(req);
}

void ctl_req_result(struct ctl_req *req, cJSON *result)
{
	if (!result)
		result = cJSON_CreateObject();
	req_answer(req, "result", result);
}

void ctl_req_error(struct ctl_req *req, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	req_answer(req, "error", make_error(code, msg));
}

void ctl_req_bad_params(struct ctl_req *req, const char *err)
{
	ctl_req_error(req, CTL_ERR_BAD_PARAMS, "%s", err);
}

static bool id_equal(const cJSON *a, const cJSON *b)
{
	if (cJSON_IsNumber(a) && cJSON_IsNumber(b))
		return a->valuedouble == b->valuedouble;
	if (cJSON_IsString(a) && cJSON_IsString(b))
		return strcmp(a->valuestring, b->valuestring) == 0;
	return false;
}

static const struct ctl_method *find_method(const struct ctl *ctl, const char *name)
{
	for (const struct ctl_method *m = ctl->methods; m && m->name; m++)
		if (strcmp(m->name, name) == 0)
			return m;
	return NULL;
}

static bool only_space(const char *p, const char *end)
{
	for (; p < end; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			return false;
	return true;
}

/* Validates one complete line and hands it to its handler. */
static void dispatch_line(struct ctl *ctl, const char *line, size_t len)
{
	const char *end = NULL;
	cJSON *root, *id, *method, *params;
	const struct ctl_method *m;
	struct ctl_req *req;
	char msg[256];
	int code;

	if (only_space(line, line + len))
		return; /* blank lines are harmless keep-alives */
	root = cJSON_ParseWithLengthOpts(line, len, &end, 0);
	if (!root) {
		size_t at = end && end >= line && end <= line + len ? (size_t)(end - line) : 0;

		reply_error_id(ctl, NULL, CTL_ERR_PARSE, "invalid JSON near byte %zu", at);
		return;
	}
	if (end && !only_space(end, line + len)) {
		reply_error_id(ctl, NULL, CTL_ERR_PARSE,
			       "trailing data after the JSON value at byte %zu",
			       (size_t)(end - line));
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		reply_error_id(ctl, NULL, CTL_ERR_INVALID_REQUEST, "a request is a JSON object");
		goto out;
	}
	id = cJSON_GetObjectItemCaseSensitive(root, "id");
	if (!id) {
		reply_error_id(ctl, NULL, CTL_ERR_INVALID_REQUEST, "missing \"id\"");
		goto out;
	}
	if (!cJSON_IsNumber(id) && !cJSON_IsString(id)) {
		reply_error_id(ctl, NULL, CTL_ERR_INVALID_REQUEST,
			       "\"id\" must be a number or a string");
		goto out;
	}
	method = cJSON_GetObjectItemCaseSensitive(root, "method");
	if (!cJSON_IsString(method)) {
		reply_error_id(ctl, id, CTL_ERR_INVALID_REQUEST, "\"method\" must be a string");
		goto out;
	}
	params = cJSON_GetObjectItemCaseSensitive(root, "params");
	if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params)) {
		reply_error_id(ctl, id, CTL_ERR_BAD_PARAMS, "\"params\" must be an object");
		goto out;
	}
	m = find_method(ctl, method->valuestring);
	if (!m) {
		reply_error_id(ctl, id, CTL_ERR_UNKNOWN_METHOD, "unknown method \"%.64s\"",
			       method->valuestring);
		goto out;
	}

	pthread_mutex_lock(&ctl->lock);
	for (req = ctl->pending; req; req = req->next)
		if (id_equal(req->id, id))
			break;
	pthread_mutex_unlock(&ctl->lock);
	if (req) {
		/* Responses are matched by id: a second one in flight would be ambiguous. */
		reply_error_id(ctl, id, CTL_ERR_DUPLICATE_ID,
			       "a request with this id (%s) is still pending", req->method);
		goto out;
	}
	if (ctl->gate) {
		msg[0] = 0;
		code = ctl->gate(ctl->opaque, m, msg, sizeof(msg));
		if (code) {
			reply_error_id(ctl, id, code, "%s", msg[0] ? msg : "not allowed now");
			goto out;
		}
	}

	req = calloc(1, sizeof(*req));
	if (!req) {
		if (ctl->release)
			ctl->release(ctl->opaque, m);
		reply_error_id(ctl, id, CTL_ERR_INTERNAL, "out of memory");
		goto out;
	}
	req->ctl = ctl;
	req->method = m->name;
	req->m = m;
	req->id = cJSON_DetachItemViaPointer(root, id);
	if (params && cJSON_IsObject(params))
		req->params = cJSON_DetachItemViaPointer(root, params);
	else
		req->params = cJSON_CreateObject();
	if (!req->params) {
		if (ctl->release)
			ctl->release(ctl->opaque, m);
		reply_error_id(ctl, req->id, CTL_ERR_INTERNAL, "out of memory");
		req_free(req);
		goto out;
	}
	pthread_mutex_lock(&ctl->lock);
	req->next = ctl->pending;
	if (req->next)
		req->next->prev = req;
	ctl->pending = req;
	ctl->nr_pending++;
	pthread_mutex_unlock(&ctl->lock);
	cJSON_Delete(root);
	m->fn(ctl->opaque, req);
	return;
out:
	cJSON_Delete(root);
}

/* ---- line reader ---------------------------------------------------------- */

static int buf_append(struct ctl *ctl, const char *data, size_t n)
{
	if (ctl->len + n > ctl->cap) {
		size_t cap = ctl->cap ? ctl->cap : 4096;
		char *nb;

		while (cap < ctl->len + n)
			cap *= 2;
		if (cap > ctl->line_max)
			cap = ctl->line_max;
		nb = realloc(ctl->buf, cap);
		if (!nb)
			return -ENOMEM;
		ctl->buf = nb;
		ctl->cap = cap;
	}
	memcpy(ctl->buf + ctl->len, data, n);
	ctl->len += n;
	return 0;
}

void ctl_feed(struct ctl *ctl, const char *data, size_t len)
{
	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t n = nl ? (size_t)(nl - data) : len;

		if (!ctl->discarding) {
			if (n > ctl->line_max - ctl->len) {
				/*
				 * Answer now rather than at the newline: the parent learns early,
				 * and we never hold more than line_max bytes of one line.
				 */
				reply_error_id(ctl, NULL, CTL_ERR_TOO_LARGE,
					       "request line longer than %zu bytes; skipped",
					       ctl->line_max);
				ctl->discarding = true;
				ctl->len = 0;
			} else if (buf_append(ctl, data, n) < 0) {
				reply_error_id(ctl, NULL, CTL_ERR_INTERNAL,
					       "out of memory reading a request; skipped");
				ctl->discarding = true;
				ctl->len = 0;
			}
		}
		if (!nl)
			return;
		if (!ctl->discarding)
			dispatch_line(ctl, ctl->buf, ctl->len);
		ctl->discarding = false;
		ctl->len = 0;
		data = nl + 1;
		len -= n + 1;
	}
}

ssize_t ctl_read(struct ctl *ctl, int fd)
{
	char chunk[LOOP_READ_BUF];
	ssize_t n;

	do
		n = read(fd, chunk, sizeof(chunk));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0) {
		/* A last line without its newline still counts. */
		if (ctl->len && !ctl->discarding)
			dispatch_line(ctl, ctl->buf, ctl->len);
		ctl->len = 0;
		ctl->discarding = false;
		return 0;
	}
	ctl_feed(ctl, chunk, n);
	return n;
}

/* ---- object --------------------------------------------------------------- */

int ctl_create(struct ctl **out, const struct ctl_config *cfg)
{
	struct ctl *ctl;

	if (!cfg || cfg->out_fd < 0)
		return -EINVAL;
	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->out_fd = cfg->out_fd;
	ctl->methods = cfg->methods;
	ctl->opaque = cfg->opaque;
	ctl->gate = cfg->gate;
	ctl->release = cfg->release;
	ctl->line_max = cfg->line_max ? cfg->line_max : CTL_LINE_MAX;
	pthread_mutex_init(&ctl->lock, NULL);
	*out = ctl;
	return 0;
}

void ctl_destroy(struct ctl *ctl)
{
	if (!ctl)
		return;
	/*
	 * Whoever deferred these should have answered them when it shut down; answer
	 * here so the parent never waits forever and nothing leaks.
	 */
	while (ctl->pending) {
		pr_warn(TAG, "%s still pending at exit", ctl->pending->method);
		ctl_req_error(ctl->pending, CTL_ERR_CANCELLED, "the shim is exiting");
	}
	pthread_mutex_destroy(&ctl->lock);
	free(ctl->buf);
	free(ctl);
}

unsigned ctl_pending(struct ctl *ctl)
{
	unsigned n;

	pthread_mutex_lock(&ctl->lock);
	n = ctl->nr_pending;
	pthread_mutex_unlock(&ctl->lock);
	return n;
}

bool ctl_output_broken(struct ctl *ctl)
{
	bool b;

	pthread_mutex_lock(&ctl->lock);
	b = ctl->out_broken;
	pthread_mutex_unlock(&ctl->lock);
	return b;
}

/* ---- parameter helpers ---------------------------------------------------- */

static const cJSON *param_get(const cJSON *params, const char *key, bool required,
			      char err[CTL_ERRLEN], int *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);

	if (!v || cJSON_IsNull(v)) {
		if (required) {
			snprintf(err, CTL_ERRLEN, "params.%s: required", key);
			*ret = -EINVAL;
		} else {
			*ret = -ENOENT;
		}
		return NULL;
	}
	*ret = 0;
	return v;
}

int ctl_param_str(const cJSON *params, const char *key, bool required, const char **out,
		  char err[CTL_ERRLEN])
{
	int ret;
	const cJSON *v = param_get(params, key, required, err, &ret);

	if (!v)
		return ret;
	if (!cJSON_IsString(v)) {
		snprintf(err, CTL_ERRLEN, "params.%s: expected a string", key);
		return -EINVAL;
	}
	*out = v->valuestring;
	return 0;
}

int ctl_param_u64(const cJSON *params, const char *key, bool required, uint64_t min, uint64_t max,
		  uint64_t *out, char err[CTL_ERRLEN])
{
	int ret;
	const cJSON *v = param_get(params, key, required, err, &ret);
	double d;

	if (!v)
		return ret;
	d = cJSON_IsNumber(v) ? v->valuedouble : -1;
	/*
	 * Doubles hold integers exactly up to 2^53, which bounds every limit we use.
	 * Range first: converting a negative or huge double to an integer is undefined.
	 */
	if (!cJSON_IsNumber(v) || !(d >= 0 && d < 9007199254740992.0) || d < (double)min ||
	    d > (double)max || d != (double)(uint64_t)d) {
		snprintf(err, CTL_ERRLEN, "params.%s: expected an integer in [%llu, %llu]", key,
			 (unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	*out = (uint64_t)d;
	return 0;
}

int ctl_param_bool(const cJSON *params, const char *key, bool required, bool *out,
		   char err[CTL_ERRLEN])
{
	int ret;
	const cJSON *v = param_get(params, key, required, err, &ret);

	if (!v)
		return ret;
	if (!cJSON_IsBool(v)) {
		snprintf(err, CTL_ERRLEN, "params.%s: expected true or false", key);
		return -EINVAL;
	}
	*out = cJSON_IsTrue(v);
	return 0;
}

int ctl_param_strv(const cJSON *params, const char *key, bool required, size_t max,
		   const cJSON **out, size_t *count, char err[CTL_ERRLEN])
{
	int ret;
	const cJSON *v = param_get(params, key, required, err, &ret);
	const cJSON *e;
	size_t n = 0;

	if (!v)
		return ret;
	if (!cJSON_IsArray(v))
		goto bad;
	cJSON_ArrayForEach(e, v)
	{
		if (!cJSON_IsString(e))
			goto bad;
		n++;
	}
	if (n > max) {
		snprintf(err, CTL_ERRLEN, "params.%s: at most %zu entries", key, max);
		return -EINVAL;
	}
	*out = v;
	*count = n;
	return 0;
bad:
	snprintf(err, CTL_ERRLEN, "params.%s: expected an array of strings", key);
	return -EINVAL;
}

int ctl_param_obj(const cJSON *params, const char *key, bool required, const cJSON **out,
		  char err[CTL_ERRLEN])
{
	int ret;
	const cJSON *v = param_get(params, key, required, err, &ret);

	if (!v)
		return ret;
	if (!cJSON_IsObject(v)) {
		snprintf(err, CTL_ERRLEN, "params.%s: expected an object", key);
		return -EINVAL;
	}
	*out = v;
	return 0;
}
