/* listen.c — the address serve listens on: host:port (IPv4 or IPv6, a
 * name like localhost too), [v6]:port, or unix:/path (created 0600: only
 * its owner may connect).  Bound before anything starts, so a bad or
 * busy address fails at once, with one line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

/* Connections waiting to be accepted; more are refused by the kernel. */
#define LISTEN_BACKLOG 64

static int is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return 0;
}

/* A stale socket file (its server gone) is replaced; a live one is not. */
static int unix_path_free(const char *path, struct serve_error *err)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err->msg, sizeof err->msg, "--listen unix:%s: the file exists and is not a socket: "
			 "choose another path", path);
		return -1;
	}
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int live = fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
	if (fd >= 0)
		close(fd);
	if (live) {
		snprintf(err->msg, sizeof err->msg, "--listen unix:%s: another server listens there: stop "
			 "it or choose another path", path);
		return -1;
	}
	unlink(path);
	return 0;
}

static int listen_unix(struct serve_server *s, const char *path, struct serve_error *err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (!*path || strlen(path) >= sizeof sun.sun_path) {
		snprintf(err->msg, sizeof err->msg, "--listen unix:PATH needs a path of 1 to %zu bytes",
			 sizeof sun.sun_path - 1);
		err->usage = 1;
		return -1;
	}
	if (unix_path_free(path, err))
		return -1;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* Created 0600 from the start: no moment when others may connect.
	 * (umask is the process's: this runs before any thread starts.) */
	mode_t old = umask(0177);
	int r = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sun, sizeof sun);
	umask(old);
	if (r != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		snprintf(err->msg, sizeof err->msg, "cannot listen on unix:%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	s->listen_fd = fd;
	snprintf(s->unix_path, sizeof s->unix_path, "%s", path);
	snprintf(s->url, sizeof s->url, "unix:%s", path);
	s->private_addr = 1;
	return 0;
}

/* "host:port", "[v6]:port", ":port" (every interface, as Go spells it). */
static int split_host_port(const char *spec, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon;
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (!close || close[1] != ':' || (size_t)(close - spec - 1) >= hlen)
			return -1;
		memcpy(host, spec + 1, (size_t)(close - spec - 1));
		host[close - spec - 1] = 0;
		colon = close + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon || (size_t)(colon - spec) >= hlen || memchr(spec, ':', (size_t)(colon - spec)))
			return -1;
		memcpy(host, spec, (size_t)(colon - spec));
		host[colon - spec] = 0;
	}
	if (!colon[1] || strlen(colon + 1) >= plen || strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return -1;
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

static void set_url(struct serve_server *s, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char addr[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof addr);
		port = ntohs(in6->sin6_port);
		snprintf(s->url, sizeof s->url, "http://[%s]:%d/debug/pprof/", addr, port);
		return;
	}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, addr, sizeof addr);
		port = ntohs(in->sin_port);
	}
	snprintf(s->url, sizeof s->url, "http://%s:%d/debug/pprof/", addr, port);
}

static int listen_inet(struct serve_server *s, const char *spec, struct serve_error *err)
{
	char host[256], port[16];
	if (split_host_port(spec, host, sizeof host, port, sizeof port)) {
		snprintf(err->msg, sizeof err->msg, "--listen takes HOST:PORT, [IPV6]:PORT or unix:PATH, "
			 "not '%s'", spec);
		err->usage = 1;
		return -1;
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res;
	int r = getaddrinfo(*host ? host : NULL, port, &hints, &res);
	if (r != 0) {
		snprintf(err->msg, sizeof err->msg, "--listen %s: %s", spec, gai_strerror(r));
		return -1;
	}
	int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol), one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		int e = errno;
		snprintf(err->msg, sizeof err->msg, "cannot listen on %s: %s%s", spec, strerror(e),
			 e == EADDRINUSE ? " (another server has that port: choose another with --listen)" : "");
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return -1;
	}
	s->private_addr = is_loopback(res->ai_addr);
	freeaddrinfo(res);
	s->listen_fd = fd;
	set_url(s, fd);
	return 0;
}

int serve_listen(struct serve_server *s, struct serve_error *err)
{
	const char *spec = s->o.listen;
	if (strncmp(spec, "unix:", 5) == 0)
		return listen_unix(s, spec + 5, err);
	return listen_inet(s, spec, err);
}

void serve_unlisten(struct serve_server *s)
{
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	s->listen_fd = -1;
	if (s->unix_path[0])
		unlink(s->unix_path);
	s->unix_path[0] = 0;
}
