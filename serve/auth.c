/* auth.c — optional credentials: HTTP basic auth (--basic-auth-file, one
 * line "user:password") or a bearer token (--token-file, one line).  The
 * files are read once, at the start, and must not be readable by others
 * (as ssh insists for its keys).  Compared in constant time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* Longest credential line accepted. */
#define AUTH_MAX 4096

/* The first line of path, malloc'ed; NULL with err set. */
static char *read_secret(const char *option, const char *path, struct serve_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	char buf[AUTH_MAX + 2];
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err->msg, sizeof err->msg, "%s %s: %s", option, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err->msg, sizeof err->msg, "%s %s: readable by others than its owner: chmod 600 %s",
			 option, path, path);
		close(fd);
		return NULL;
	}
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	if (n <= 0 || !buf[0] || (size_t)n > AUTH_MAX + 1) {
		snprintf(err->msg, sizeof err->msg, "%s %s: %s", option, path,
			 n > 0 && buf[0] ? "longer than 4096 bytes" : "empty: put the secret on its first line");
		return NULL;
	}
	char *s = strdup(buf);
	if (!s)
		snprintf(err->msg, sizeof err->msg, "out of memory");
	explicit_bzero(buf, sizeof buf);
	return s;
}

int serve_auth_load(struct serve_server *s, struct serve_error *err)
{
	if (s->o.token_file && !(s->token = read_secret("--token-file", s->o.token_file, err)))
		return -1;
	if (!s->o.basic_auth_file)
		return 0;
	char *line = read_secret("--basic-auth-file", s->o.basic_auth_file, err);
	if (!line)
		return -1;
	char *colon = strchr(line, ':');
	if (!colon || colon == line) {
		snprintf(err->msg, sizeof err->msg, "--basic-auth-file %s: the line must be USER:PASSWORD",
			 s->o.basic_auth_file);
		free(line);
		return -1;
	}
	*colon = 0;
	s->basic_user = line;
	s->basic_pass = strdup(colon + 1);
	if (!s->basic_pass) {
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return -1;
	}
	return 0;
}

/* Compares without leaking where the first difference is. */
static int same_secret(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;
	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
	return diff == 0;
}

static int token_ok(struct serve_server *s, struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	return h && strncmp(h, "Bearer ", 7) == 0 && same_secret(h + 7, s->token);
}

static int basic_ok(struct serve_server *s, struct MHD_Connection *c)
{
	char *pass = NULL;
	char *user = MHD_basic_auth_get_username_password(c, &pass);
	int ok = user && pass && same_secret(user, s->basic_user) & same_secret(pass, s->basic_pass);
	if (user)
		MHD_free(user);
	if (pass)
		MHD_free(pass);
	return ok;
}

int serve_auth_ok(struct serve_server *s, struct MHD_Connection *c)
{
	if (!s->token && !s->basic_user)
		return 1;
	/* Either is enough when both are set: a scraper with a token, a
	 * browser with basic auth. */
	return (s->token && token_ok(s, c)) || (s->basic_user && basic_ok(s, c));
}

void serve_auth_free(struct serve_server *s)
{
	if (s->token)
		explicit_bzero(s->token, strlen(s->token));
	if (s->basic_pass)
		explicit_bzero(s->basic_pass, strlen(s->basic_pass));
	free(s->token);
	free(s->basic_user);
	free(s->basic_pass);
	s->token = s->basic_user = s->basic_pass = NULL;
}
