/* replay.c — runs a fuzz target's LLVMFuzzerTestOneInput over every file of
 * the directories given as arguments (the seed corpus and the crash inputs
 * found), in name order, without libFuzzer.  Built with the normal compiler,
 * it is how `meson test` (and the ASan/UBSan build) replays the corpus.
 * Exits 1 if a directory cannot be read or holds no file: a replay of
 * nothing tests nothing.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Reads a whole file into a malloc'ed block of exactly its size (so the
 * target gets no hidden terminator); returns 0 or -1. */
static int read_all(const char *path, uint8_t **data, size_t *size)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	size_t cap = 4096, n = 0;
	uint8_t *buf = malloc(cap);
	size_t r;
	while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			uint8_t *nb = realloc(buf, cap * 2);
			if (!nb)
				free(buf);
			buf = nb;
			cap *= 2;
		}
	}
	int bad = !buf || ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		return -1;
	}
	uint8_t *exact = malloc(n ? n : 1);
	if (exact && n)
		memcpy(exact, buf, n);
	free(buf);
	*data = exact;
	*size = n;
	return exact ? 0 : -1;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int skip_dots(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Replays every regular file of dir; returns how many, or -1. */
static int replay_dir(const char *dir)
{
	struct dirent **names;
	int n = scandir(dir, &names, skip_dots, by_name);
	if (n < 0) {
		perror(dir);
		return -1;
	}
	int done = 0, failed = 0;
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
		free(names[i]);
		if (stat(path, &st) || !S_ISREG(st.st_mode))
			continue;
		uint8_t *data;
		size_t size;
		if (read_all(path, &data, &size)) {
			perror(path);
			failed = 1;
			continue;
		}
		printf("replay %s (%zu bytes)\n", path, size);
		fflush(stdout);
		LLVMFuzzerTestOneInput(data, size);
		free(data);
		done++;
	}
	free(names);
	return failed ? -1 : done;
}

int main(int argc, char **argv)
{
	int total = 0;
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		int n = replay_dir(argv[i]);
		if (n <= 0) {
			fprintf(stderr, "%s: %s: %s\n", argv[0], argv[i],
				n < 0 ? "cannot be replayed" : "no input files");
			return 1;
		}
		total += n;
	}
	printf("%d inputs replayed\n", total);
	return 0;
}
