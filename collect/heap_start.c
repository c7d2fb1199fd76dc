/* heap_start.c — starting the command of `pprofc run --profile heap|allocs`
 * with the allocation sampler (preload/) loaded into it.
 *
 * No ptrace here: the sampler records from inside the target, so the
 * command is a plain child.  pprofc creates the ring (a memfd holding
 * preload/heapring.h's header and data) and maps it; the child clears
 * close-on-exec on its own copy of the descriptor, writes its pid as the
 * ring's owner (a process it forks later is not the owner and records
 * nothing) and execs the command with the sampler in LD_PRELOAD and the
 * descriptor's number in the environment.  A close-on-exec pipe tells
 * whether the exec happened: it reads end-of-file then, a byte if the
 * exec failed (the child said why on stderr).
 *
 * Following children (--children): no ring is passed; the command gets
 * the name of pprofc's socket instead (heap_follow.c), and asks for its
 * ring over it like every process it starts.
 *
 * Refused before anything starts: a sampler library that cannot be found,
 * and a statically linked command (no dynamic loader: LD_PRELOAD would be
 * ignored and the profile silently empty).
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "internal.h"

/* Where the sampler library is: $PPROFC_HEAP_LIB, else next to this pprofc
 * in its build tree (build/cli/pprofc and build/preload/), else where it
 * is installed.  0 with its absolute path in lib. */
static int find_library(char *lib, size_t len, struct collect_error *err)
{
	const char *env = getenv("PPROFC_HEAP_LIB");
	char self[PATH_MAX], cand[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	self[n > 0 ? n : 0] = 0;
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = 0;
	const char *where[3] = { env && *env ? env : NULL, cand, PPROFC_HEAP_LIBDIR "/libpprofc_heap.so" };
	snprintf(cand, sizeof cand, "%s/../preload/libpprofc_heap.so", self);
	for (int i = 0; i < 3; i++) {
		/* An explicit path that is wrong is an error, not a fallback. */
		if (where[i] && realpath(where[i], lib) && access(lib, R_OK) == 0 && strlen(lib) < len)
			return 0;
		if (i == 0 && where[0])
			break;
	}
	snprintf(err->msg, sizeof err->msg, "heap profiles need the allocation sampler "
		 "libpprofc_heap.so: not found %s%s", env && *env ? "at $PPROFC_HEAP_LIB=" : "in ",
		 env && *env ? env : PPROFC_HEAP_LIBDIR " (or set PPROFC_HEAP_LIB)");
	return -1;
}

/* The file execvp would run for name (searched in $PATH). */
static int command_path(const char *name, char *path, size_t len)
{
	if (strchr(name, '/')) {
		snprintf(path, len, "%s", name);
		return access(path, X_OK);
	}
	const char *p = getenv("PATH");
	if (!p || !*p)
		p = "/usr/local/bin:/usr/bin:/bin";
	while (*p) {
		size_t dl = strcspn(p, ":");
		snprintf(path, len, "%.*s%s%s", (int)dl, p, dl ? "/" : "", name);
		if (access(path, X_OK) == 0)
			return 0;
		p += dl + (p[dl] == ':');
	}
	return -1;
}

/* 1 if the file is an ELF executable without a program interpreter (a
 * static binary), 0 otherwise (dynamic, a script, unreadable: exec says). */
static int is_static_elf(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), stat = 0;
	if (fd < 0)
		return 0;
	elf_version(EV_CURRENT);
	Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	size_t nph;
	if (e && elf_kind(e) == ELF_K_ELF && elf_getphdrnum(e, &nph) == 0) {
		stat = 1;
		for (size_t i = 0; i < nph && stat; i++) {
			GElf_Phdr ph;
			if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_INTERP)
				stat = 0;
		}
	}
	elf_end(e);
	close(fd);
	return stat;
}

/* The command's environment: ours, with the sampler first in LD_PRELOAD
 * and the ring's descriptor number, or (following) the socket's name.
 * NULL when out of memory. */
static char **child_env(const char *lib, int fd, const char *sock)
{
	extern char **environ;
	size_t n = 0, k = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 3, sizeof *env);
	const char *old = getenv("LD_PRELOAD");
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) && strncmp(environ[i], HEAPRING_ENV_FD "=", sizeof HEAPRING_ENV_FD) &&
		    strncmp(environ[i], HEAPRING_ENV_SOCK "=", sizeof HEAPRING_ENV_SOCK))
			env[k++] = environ[i];
	if (asprintf(&env[k], "LD_PRELOAD=%s%s%s", lib, old && *old ? ":" : "", old && *old ? old : "") < 0 ||
	    (sock ? asprintf(&env[k + 1], "%s=%s", HEAPRING_ENV_SOCK, sock)
		  : asprintf(&env[k + 1], "%s=%d", HEAPRING_ENV_FD, fd)) < 0) {
		free(env);      /* the strings leak: we are about to fail anyway */
		return NULL;
	}
	return env;
}

static void free_env(char **env)
{
	size_t n = 0;
	while (env[n])
		n++;
	free(env[n - 2]);       /* the two strings child_env made, last */
	free(env[n - 1]);
	free(env);
}

/* The ring: a memfd (close-on-exec here; the child clears that on its
 * copy), mapped shared, its header filled.  sealed: its size can no
 * longer change, whoever holds it (a followed process gets the memfd
 * itself: shrunk, it would turn pprofc's reads into SIGBUS). */
int collect_ring_make(struct collect_ring *r, size_t data_size, int sealed, const struct collect_opts *o,
		      struct collect_error *err)
{
	size_t size = HEAPRING_SIZE(data_size);
	r->hdr = NULL;
	r->fd = memfd_create("pprofc-heapring", MFD_CLOEXEC | (sealed ? MFD_ALLOW_SEALING : 0));
	if (r->fd < 0 || ftruncate(r->fd, (off_t)size) != 0 ||
	    (sealed && fcntl(r->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) ||
	    (r->hdr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0)) == MAP_FAILED) {
		snprintf(err->msg, sizeof err->msg, "cannot create the heap sample ring: %s", strerror(errno));
		r->hdr = NULL;
		collect_ring_close(r);
		return -1;
	}
	r->map_size = size;
	r->data = (unsigned char *)r->hdr + HEAPRING_HEADER_SIZE;
	r->data_size = data_size;
	r->tail = 0;
	*r->hdr = (struct heapring_header){
		.magic = HEAPRING_MAGIC, .version = HEAPRING_VERSION,
		.stack_size = (uint32_t)(o->stack_size ? o->stack_size : COLLECT_HEAP_STACK_DEFAULT),
		.data_size = data_size, .rate = o->heap_rate ? o->heap_rate : 1,
		.reader_alive_ns = collect_now_ns(),
	};
	return 0;
}

void collect_ring_close(struct collect_ring *r)
{
	if (r->hdr)
		munmap(r->hdr, r->map_size);
	if (r->fd >= 0)
		close(r->fd);
	r->hdr = NULL;
	r->fd = -1;
}

/* The child: owner, descriptor kept across exec, exec; a byte on the pipe
 * if that failed. */
static void run_child(char **argv, char **env, struct collect_ring *r, int pipe_w)
{
	if (r->hdr)
		r->hdr->owner_pid = getpid();
	if (!r->hdr || fcntl(r->fd, F_SETFD, 0) == 0)
		execvpe(argv[0], argv, env);
	fprintf(stderr, "pprofc: cannot run %s: %s\n", argv[0], strerror(errno));
	if (write(pipe_w, "x", 1) < 0)
		_exit(127);
	_exit(127);
}

pid_t collect_heap_start(char **argv, const struct collect_opts *o, struct collect_ring *r,
			 const char *sock, char *lib_out, struct collect_error *err, int *status)
{
	char lib[PATH_MAX], path[PATH_MAX];
	int fds[2], st;
	*status = -1;
	r->fd = -1;
	r->hdr = NULL;
	if (find_library(lib, sizeof lib, err))
		return -1;
	if (command_path(argv[0], path, sizeof path) == 0 && is_static_elf(path)) {
		snprintf(err->msg, sizeof err->msg, "%.300s is statically linked: heap profiles need a "
			 "dynamically linked command (the sampler is loaded with LD_PRELOAD)", path);
		return -1;
	}
	snprintf(lib_out, PATH_MAX, "%s", lib);
	if (!sock && collect_ring_make(r, COLLECT_RING_DATA_SIZE, 0, o, err))
		return -1;
	char **env = child_env(lib, r->fd, sock);
	if (!env || pipe2(fds, O_CLOEXEC)) {
		snprintf(err->msg, sizeof err->msg, "cannot start %s: %s", argv[0],
			 env ? strerror(errno) : "out of memory");
		if (env)
			free_env(env);
		collect_ring_close(r);
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0)
		run_child(argv, env, r, fds[1]);
	close(fds[1]);
	free_env(env);
	char c;
	ssize_t got;
	while ((got = read(fds[0], &c, 1)) < 0 && errno == EINTR)
		;
	close(fds[0]);
	if (pid < 0 || got != 0) {
		if (pid < 0)
			snprintf(err->msg, sizeof err->msg, "cannot start %s: %s", argv[0], strerror(errno));
		while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (pid > 0)
			*status = st;   /* the child said why */
		collect_ring_close(r);
		return -1;
	}
	return pid;
}
