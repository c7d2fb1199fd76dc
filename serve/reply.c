/* reply.c — responses as net/http/pprof makes them (docs/FORMATS.md §8),
 * and the small things every handler needs: arguments, the client
 * leaving, memory buffers for bodies, clocks.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

uint64_t serve_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t serve_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int membuf_open(struct membuf *m)
{
	m->buf = NULL;
	m->len = 0;
	m->f = open_memstream(&m->buf, &m->len);
	return m->f ? 0 : -1;
}

int membuf_close(struct membuf *m)
{
	int bad = ferror(m->f);
	if (fclose(m->f) != 0 || bad) {
		free(m->buf);
		m->buf = NULL;
		return -1;
	}
	return 0;
}

/* Queues resp with the headers every answer has; takes resp over. */
static enum MHD_Result queue(struct serve_req *r, unsigned status, struct MHD_Response *resp, size_t len)
{
	if (!resp)
		return MHD_NO;          /* out of memory: MHD closes the connection */
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	r->status = status;
	r->bytes = len;
	enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* A response owning buf (malloc'ed); NULL (buf freed) on failure. */
static struct MHD_Response *owning(char *buf, size_t len)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		free(buf);
	return resp;
}

enum MHD_Result reply_error(struct serve_req *r, unsigned status, const char *fmt, ...)
{
	char *txt = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&txt, fmt, ap);
	va_end(ap);
	if (n < 0)
		return MHD_NO;
	/* Go's serveError: the text and a newline; go tool pprof prints the
	 * body when both X-Go-Pprof and text/plain are there. */
	char *body = realloc(txt, (size_t)n + 2);
	if (!body) {
		free(txt);
		return MHD_NO;
	}
	memcpy(body + n, "\n", 2);
	struct MHD_Response *resp = owning(body, (size_t)n + 1);
	if (resp) {
		MHD_add_response_header(resp, "Content-Type", "text/plain; charset=utf-8");
		MHD_add_response_header(resp, "X-Go-Pprof", "1");
	}
	return queue(r, status, resp, (size_t)n + 1);
}

enum MHD_Result reply_profile(struct serve_req *r, char *buf, size_t len, const char *filename)
{
	char disp[128];
	struct MHD_Response *resp = owning(buf, len);
	snprintf(disp, sizeof disp, "attachment; filename=\"%s\"", filename);
	if (resp) {
		MHD_add_response_header(resp, "Content-Type", "application/octet-stream");
		MHD_add_response_header(resp, "Content-Disposition", disp);
	}
	return queue(r, MHD_HTTP_OK, resp, len);
}

enum MHD_Result reply_trace(struct serve_req *r, char *buf, size_t len)
{
	struct MHD_Response *resp = owning(buf, len);
	if (resp) {
		MHD_add_response_header(resp, "Content-Type", "application/json");
		MHD_add_response_header(resp, "Content-Disposition", "attachment; filename=\"trace.json\"");
	}
	return queue(r, MHD_HTTP_OK, resp, len);
}

enum MHD_Result reply_text(struct serve_req *r, char *buf, size_t len, const char *type)
{
	struct MHD_Response *resp = owning(buf, len);
	if (resp)
		MHD_add_response_header(resp, "Content-Type", type);
	return queue(r, MHD_HTTP_OK, resp, len);
}

enum MHD_Result reply_redirect(struct serve_req *r, const char *location)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (resp)
		MHD_add_response_header(resp, "Location", location);
	return queue(r, MHD_HTTP_MOVED_PERMANENTLY, resp, 0);
}

const char *req_arg(struct serve_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* The client closed its side (or reset): it will not read an answer. */
static int client_gone(struct serve_req *r, int timeout_ms)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return 0;
	/* POLLRDHUP only: a pipelined next request (POLLIN) is no reason. */
	struct pollfd pf = { ci->connect_fd, POLLRDHUP, 0 };
	int n = poll(&pf, 1, timeout_ms);
	return n > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static int server_stopping(struct serve_server *s)
{
	pthread_mutex_lock(&s->mu);
	int stop = s->stopping;
	pthread_mutex_unlock(&s->mu);
	return stop;
}

int req_cancelled(struct serve_req *r)
{
	if (!r->cancel && (server_stopping(r->srv) || client_gone(r, 0)))
		r->cancel = 1;
	return r->cancel;
}

void req_sleep_until(struct serve_req *r, uint64_t end_ns)
{
	for (;;) {
		uint64_t now = serve_now_ns();
		if (now >= end_ns || req_cancelled(r))
			return;
		/* Woken at once by the client leaving; the server's stop is
		 * seen within 100 ms. */
		uint64_t left_ms = (end_ns - now + 999999) / 1000000;
		if (client_gone(r, left_ms < 100 ? (int)left_ms : 100))
			r->cancel = 1;
	}
}
