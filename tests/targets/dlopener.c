/* dlopener.c — loads a shared library while being profiled, and maps an
 * ELF file it never runs (tests/integration/test_binaries.py,
 * test_hostile.py).
 *
 * Usage: dlopener wait|now LIBRARY [FILE]
 *   wait: print "ready", wait for SIGUSR1, then dlopen LIBRARY, print
 *         "loaded" and spin in its plugin_spin() on thread "plugin";
 *   now:  dlopen and start the thread first, then print "ready".
 * FILE, when given, is mapped PROT_READ|PROT_EXEC (never touched) before
 * "ready": a possibly corrupted or truncated ELF file in the maps.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

static void *plugin_thread(void *fn)
{
	prctl(PR_SET_NAME, "plugin");
	((void (*)(void))fn)();
	return NULL;
}

static int load_and_spin(const char *lib)
{
	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	void *fn = h ? dlsym(h, "plugin_spin") : NULL;
	pthread_t t;
	if (!fn || pthread_create(&t, NULL, plugin_thread, fn) != 0) {
		fprintf(stderr, "dlopener: cannot load %s: %s\n", lib, dlerror());
		return -1;
	}
	return 0;
}

static int map_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	void *p = fd >= 0 ? mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0) : MAP_FAILED;
	if (fd >= 0)
		close(fd);
	if (p == MAP_FAILED) {
		perror("dlopener: map");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3 || (strcmp(argv[1], "wait") != 0 && strcmp(argv[1], "now") != 0)) {
		fprintf(stderr, "usage: dlopener wait|now LIBRARY [FILE]\n");
		return 2;
	}
	int wait = strcmp(argv[1], "wait") == 0;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if ((argc > 3 && map_file(argv[3])) || (!wait && load_and_spin(argv[2])))
		return 1;
	printf("ready\n");
	fflush(stdout);
	if (wait) {
		int sig;
		sigwait(&set, &sig);
		if (load_and_spin(argv[2]))
			return 1;
		printf("loaded\n");
		fflush(stdout);
	}
	for (;;)
		pause();
}
