/* test_gopclntab.c — symbolize/gopclntab.c on a real Go binary and on
 * thousands of corrupted copies of it.
 *
 * argv[1] is tests/targets/go_lines_stripped (Debian's Go 1.19, -s -w).
 * The intact table must name main.spin and give main.readOne as an inlined
 * frame over main.reader (test_gopclntab.py checks every frame against Go's
 * own answers; this checks the reader's own sanity).  Then bytes of the
 * table, of the inline trees in .rodata and of the ELF headers are flipped
 * at random (seeded, so a failure repeats) and every lookup must still
 * return in bounds: under ASan and UBSan (CI) a read past the file or an
 * overflow fails the run.  It reaches into symbolize's internal header on
 * purpose: the reader is the unit under test.
 */
#include <gelf.h>
#include <libelf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../symbolize/internal.h"
#include "check.h"

static unsigned char *file;
static size_t file_size;
static uint64_t text_lo, text_hi;           /* .text, link-time */
static uint64_t tab_off, tab_size, ro_off, ro_size;

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next_random(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int load(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	file_size = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	file = malloc(file_size);
	size_t got = file ? fread(file, 1, file_size, f) : 0;
	fclose(f);
	if (got != file_size)
		return -1;
	Elf *elf = elf_memory((char *)file, file_size);
	size_t shstrndx;
	if (!elf || elf_getshdrstrndx(elf, &shstrndx) != 0)
		return -1;
	for (Elf_Scn *scn = elf_nextscn(elf, NULL); scn; scn = elf_nextscn(elf, scn)) {
		GElf_Shdr sh;
		const char *n = gelf_getshdr(scn, &sh) ? elf_strptr(elf, shstrndx, sh.sh_name) : NULL;
		if (n && strcmp(n, ".text") == 0)
			text_lo = sh.sh_addr, text_hi = sh.sh_addr + sh.sh_size;
		else if (n && strcmp(n, ".gopclntab") == 0)
			tab_off = sh.sh_offset, tab_size = sh.sh_size;
		else if (n && strcmp(n, ".rodata") == 0)
			ro_off = sh.sh_offset, ro_size = sh.sh_size;
	}
	elf_end(elf);
	return text_hi > text_lo && tab_size && ro_size ? 0 : -1;
}

static void test_intact(void)
{
	Elf *elf = elf_memory((char *)file, file_size);
	struct sym_gotab *t = sym_gotab_open(elf);
	CHECK(t != NULL);
	if (!t) {
		elf_end(elf);
		return;
	}
	CHECK_STR_EQ(sym_gotab_version(t), "1.18");
	int spin = 0, inlined_read = 0, named = 0, total = 0;
	for (uint64_t pc = text_lo; pc < text_hi; pc += 3) {
		struct sym_goframe f[64];
		int n = sym_gotab_lookup(t, pc, f, 64);
		total++;
		named += n > 0;
		for (int i = 0; i < n; i++) {
			spin += strcmp(f[i].function, "main.spin") == 0;
			inlined_read += i + 1 < n && f[i].inlined && strcmp(f[i].function, "main.readOne") == 0 &&
					strcmp(f[i + 1].function, "main.reader") == 0;
		}
	}
	CHECK(spin > 0);
	CHECK(inlined_read > 0);
	/* Go's text is all functions but for the padding between them. */
	CHECK_MSG(named > total * 9 / 10, "%d of %d pcs in a function", named, total);
	sym_gotab_free(t);
	elf_end(elf);
}

/* Flips a few bytes somewhere in [off, off+size), remembering them. */
struct flip {
	size_t at;
	unsigned char was;
};

static int mutate(struct flip *fl, int max)
{
	int n = 1 + (int)(next_random() % (uint64_t)max);
	for (int i = 0; i < n; i++) {
		uint64_t where = next_random() % 10;
		uint64_t off, size;
		if (where < 7)
			off = tab_off, size = where < 3 ? 256 : tab_size;    /* the header often */
		else if (where < 9)
			off = ro_off, size = ro_size;
		else
			off = 0, size = 4096;                                 /* ELF and program headers */
		fl[i].at = (size_t)(off + next_random() % size);
		fl[i].was = file[fl[i].at];
		file[fl[i].at] = (unsigned char)next_random();
	}
	return n;
}

static void test_corrupted(void)
{
	int opened = 0;
	for (int iter = 0; iter < 3000; iter++) {
		struct flip fl[8];
		int n = mutate(fl, 8);
		Elf *elf = elf_memory((char *)file, file_size);
		struct sym_gotab *t = elf ? sym_gotab_open(elf) : NULL;
		if (t) {
			opened++;
			for (int k = 0; k < 300; k++) {
				struct sym_goframe f[64];
				uint64_t pc = text_lo + next_random() % (text_hi - text_lo);
				int m = sym_gotab_lookup(t, pc, f, 64);
				for (int i = 0; i < m; i++)   /* the strings must be readable */
					CHECK(strlen(f[i].function) < file_size && (!f[i].file || strlen(f[i].file) < file_size));
			}
			sym_gotab_free(t);
		}
		if (elf)
			elf_end(elf);
		while (n--)
			file[fl[n].at] = fl[n].was;
	}
	CHECK_MSG(opened > 1000, "only %d of 3000 corrupted copies opened", opened);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		printf("SKIP: no Go fixture (go is not installed)\n");
		return 77;
	}
	elf_version(EV_CURRENT);
	if (load(argv[1])) {
		fprintf(stderr, "cannot read %s as a Go binary\n", argv[1]);
		return 1;
	}
	RUN(test_intact);
	RUN(test_corrupted);
	free(file);
	return check_summary(argv[0]);
}
