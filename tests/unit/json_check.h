/* json_check.h — validates JSON text with Python's json module (strict:
 * the bytes must be UTF-8, NaN/Infinity and raw control characters are
 * refused) and extracts values from it for exact comparison.  Python is
 * already a build dependency of pprofc; meson passes its path in PYTHON3.
 */
#ifndef PPROFC_TESTS_UNIT_JSON_CHECK_H
#define PPROFC_TESTS_UNIT_JSON_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Reads JSON on stdin; prints, one line each, the canonical JSON
 * (sorted keys, ASCII only) of the value at each path given as an argument
 * ("threads/0/name"; "" is the whole document). */
#define JSON_CHECK_PY                                                            \
	"import json, sys\n"                                                     \
	"def refuse(c):\n"                                                       \
	"    raise ValueError(\"non-standard constant \" + c)\n"                \
	"d = json.loads(sys.stdin.buffer.read().decode(\"utf-8\"), parse_constant=refuse)\n" \
	"for p in sys.argv[1:]:\n"                                               \
	"    v = d\n"                                                            \
	"    for k in [k for k in p.split(\"/\") if k]:\n"                       \
	"        v = v[int(k)] if isinstance(v, list) else v[k]\n"               \
	"    print(json.dumps(v, sort_keys=True, ensure_ascii=True))\n"

/* Feeds json (len bytes) to the checker with the given paths.  Returns the
 * checker's exit status (0: valid JSON, every path present); its stdout, one
 * line per path, goes to out (NUL-terminated).  Its stderr (the reason a
 * document is refused) goes to the test's stderr. */
static inline int json_query(const char *json, size_t len, const char *const *paths, size_t npaths,
			     char *out, size_t outlen)
{
	char tmpl[] = "/tmp/pprofc-json-XXXXXX";
	int fd = mkstemp(tmpl);
	if (fd < 0) {
		perror("mkstemp");
		abort();
	}
	if (write(fd, json, len) != (ssize_t)len) {
		perror("write");
		abort();
	}
	close(fd);
	const char *py = getenv("PYTHON3");
	if (!py || !*py)
		py = "python3";
	size_t cap = 4096 + strlen(py) + strlen(JSON_CHECK_PY);
	for (size_t i = 0; i < npaths; i++)
		cap += strlen(paths[i]) + 3;
	char *cmd = malloc(cap);
	if (!cmd)
		abort();
	size_t n = (size_t)snprintf(cmd, cap, "'%s' -c '%s'", py, JSON_CHECK_PY);
	for (size_t i = 0; i < npaths; i++)
		n += (size_t)snprintf(cmd + n, cap - n, " '%s'", paths[i]);
	snprintf(cmd + n, cap - n, " < '%s'", tmpl);
	FILE *p = popen(cmd, "r");
	free(cmd);
	if (!p) {
		perror("popen");
		abort();
	}
	size_t got = 0;
	if (outlen)
		out[0] = 0;
	while (outlen && got + 1 < outlen) {
		size_t r = fread(out + got, 1, outlen - 1 - got, p);
		if (r == 0)
			break;
		got += r;
	}
	if (outlen)
		out[got] = 0;
	char sink[256];
	while (fread(sink, 1, sizeof sink, p) > 0)
		;
	int st = pclose(p);
	unlink(tmpl);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* 0 if s is valid JSON by Python's strict reading. */
static inline int json_validate(const char *s, size_t len)
{
	char out[16];
	return json_query(s, len, NULL, 0, out, sizeof out);
}

#endif
