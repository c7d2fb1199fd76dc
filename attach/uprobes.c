/* uprobes.c — finding the allocator a running process calls and the file
 * offsets of its functions, for uprobes (see uprobes.h).  Read-only: the
 * target's maps and the module's ELF symbol table, nothing of the target
 * is touched. */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "proc.h"
#include "uprobes.h"

static const char *const fn_names[ATTACH_FN_COUNT] = {
	"malloc", "calloc", "realloc", "free", "reallocarray", "posix_memalign",
	"aligned_alloc", "memalign", "valloc", "pvalloc",
};

/* Prefixes of allocators that export their functions prefixed. */
static const char *const prefixes[] = { "", "je_", "tc_", "mi_" };

const char *attach_alloc_fn_name(enum attach_alloc_fn fn)
{
	return fn < ATTACH_FN_COUNT ? fn_names[fn] : "?";
}

static int read_sysfs_int(const char *path, const char *prefix, int *v)
{
	char buf[64];
	size_t len;
	if (attach_read_small(path, buf, sizeof buf, &len))
		return -1;
	buf[len < sizeof buf ? len : sizeof buf - 1] = 0;
	if (strncmp(buf, prefix, strlen(prefix)) != 0) {
		errno = EINVAL;
		return -1;
	}
	*v = atoi(buf + strlen(prefix));
	return 0;
}

int attach_uprobe_pmu(int *type, int *ret_bit)
{
	if (read_sysfs_int("/sys/bus/event_source/devices/uprobe/type", "", type))
		return errno = ENOENT, -1;
	if (read_sysfs_int("/sys/bus/event_source/devices/uprobe/format/retprobe", "config:", ret_bit))
		*ret_bit = 0;
	return 0;
}

/* The file offset of virtual address v, by the PT_LOAD that holds it. */
static int offset_of(Elf *elf, uint64_t v, uint64_t *off)
{
	size_t n;
	if (elf_getphdrnum(elf, &n))
		return -1;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;
		if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD && v >= ph.p_vaddr &&
		    v < ph.p_vaddr + ph.p_filesz) {
			*off = v - ph.p_vaddr + ph.p_offset;
			return 0;
		}
	}
	return -1;
}

/* The value of the defined function name in .dynsym, 0 if none. */
static uint64_t dynsym_value(Elf *elf, const char *name)
{
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM || !(d = elf_getdata(scn, NULL)))
			continue;
		for (size_t i = 0; sh.sh_entsize && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym sym;
			const char *s;
			if (gelf_getsym(d, (int)i, &sym) && sym.st_shndx != SHN_UNDEF && sym.st_value &&
			    GELF_ST_TYPE(sym.st_info) == STT_FUNC &&
			    (s = elf_strptr(elf, sh.sh_link, sym.st_name)) && strcmp(s, name) == 0)
				return sym.st_value;
		}
	}
	return 0;
}

/* The prefix under which elf defines malloc, or NULL. */
static const char *malloc_prefix(Elf *elf)
{
	char name[32];
	for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
		snprintf(name, sizeof name, "%smalloc", prefixes[i]);
		if (dynsym_value(elf, name))
			return prefixes[i];
	}
	return NULL;
}

static Elf *open_elf(const char *path, int *fd)
{
	elf_version(EV_CURRENT);
	if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	Elf *elf = elf_begin(*fd, ELF_C_READ_MMAP, NULL);
	if (!elf)
		close(*fd);
	return elf;
}

static int is_libc_or_loader(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	return strncmp(base, "libc.so", 7) == 0 || strncmp(base, "libc-", 5) == 0 ||
	       strncmp(base, "ld-linux", 8) == 0 || strncmp(base, "ld-", 3) == 0;
}

/* Whether a probe of this kind is already at off: glibc's aligned_alloc
 * is its memalign (same arguments); one probe, or each call counts twice. */
static int probed(const struct attach_allocator *a, uint64_t off, int ret)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->probes[i].offset == off && a->probes[i].ret == ret)
			return 1;
	return 0;
}

/* Fills a->probes from the module's symbols: return probes first. */
static int add_probes(struct attach_allocator *a, Elf *elf, const char *prefix)
{
	for (int ret = 1; ret >= 0; ret--)
		for (int f = 0; f < ATTACH_FN_COUNT; f++) {
			char name[48];
			uint64_t off;
			snprintf(name, sizeof name, "%s%s", prefix, fn_names[f]);
			uint64_t v = dynsym_value(elf, name);
			if (!v || (ret && f == ATTACH_FN_FREE) || offset_of(elf, v, &off) ||
			    probed(a, off, ret))
				continue;
			/* posix_memalign's block is in *memptr, usually its
			 * caller's frame: its return copies the stack, read
			 * while it is still the caller's. */
			a->probes[a->n] = (struct attach_uprobe){ a->path, off, ret,
								  !ret || f == ATTACH_FN_POSIX_MEMALIGN };
			a->fn[a->n++] = (enum attach_alloc_fn)f;
		}
	return a->n ? 0 : -1;
}

/* Looks at module path (as in maps): the allocator if it defines malloc
 * (libc: last resort, want_libc).  1 if taken, 0 if not, -1 on error. */
static int try_module(pid_t pid, const char *path, int want_libc, struct attach_allocator *a)
{
	int fd;
	if (is_libc_or_loader(path) != want_libc || (want_libc && strstr(path, "/ld-")))
		return 0;
	snprintf(a->path, sizeof a->path, "/proc/%d/root%s", (int)pid, path);
	Elf *elf = open_elf(a->path, &fd);
	if (!elf)
		return 0;
	const char *prefix = malloc_prefix(elf);
	int r = 0;
	if (prefix) {
		snprintf(a->module, sizeof a->module, "%s", path);
		a->is_libc = want_libc;
		r = add_probes(a, elf, prefix) ? 0 : 1;
	}
	elf_end(elf);
	close(fd);
	return r;
}

int attach_allocator_find(pid_t pid, struct attach_allocator *a, struct attach_error *err)
{
	char path[64], *buf;
	size_t len;
	struct attach_maps m = { 0 };
	memset(a, 0, sizeof *a);
	pid = attach_mm_pid(pid);         /* its main thread may have exited */
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	int r = attach_read_file(path, &buf, &len);
	if (r == 0) {
		r = attach_parse_maps(buf, len, &m) ? -ENOMEM : 0;
		free(buf);
	}
	if (r) {
		err->code = ATTACH_ERR_OTHER;
		snprintf(err->msg, sizeof err->msg, "cannot read %s: %s", path, strerror(-r));
		return -1;
	}
	int found = 0;
	for (int libc = 0; libc <= 1 && !found; libc++)
		for (size_t i = 0; i < m.n && !found; i++)
			if (m.v[i].path[0] == '/' && strchr(m.v[i].perms, 'x'))
				found = try_module(pid, m.v[i].path, libc, a) == 1;
	attach_maps_free(&m);
	if (!found) {
		err->code = ATTACH_ERR_OTHER;
		snprintf(err->msg, sizeof err->msg, "PID %d: no module defining malloc found (a static "
			 "executable?): use `pprofc run --profile heap`", (int)pid);
		return -1;
	}
	return 0;
}
