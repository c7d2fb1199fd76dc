/* debugcache.c — inflated copies of compressed debug files, kept on disk.
 *
 * Debian's -dbg packages (libc6-dbg among them) ship separate debug files
 * whose DWARF sections are zlib-compressed (SHF_COMPRESSED).  libdw
 * inflates each section it reads, in every process that opens the file:
 * for glibc that is 40-60 ms, most of a small dump's time.  So the first
 * time pprofc meets such a file it writes a copy with every section
 * inflated, named by the module's build ID, and from then on hands libdw
 * that copy:
 *
 *     $XDG_CACHE_HOME/pprofc/debug/<build-id>.debug
 *     (else $HOME/.cache/pprofc/debug/...)
 *
 * The build ID names the content, so a copy never goes stale; a new glibc
 * has a new ID.  The copy is written under a temporary name and renamed,
 * so a reader never sees half of one.  The directory must belong to us and
 * not be writable by others, or it is not used.  PPROFC_CACHE=off turns
 * the cache off (the debug files are then read as they are).
 * This runs while symbols are loaded, never while a thread is stopped.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Makes dir (one level), or checks that it exists; then that it is ours
 * and not group- or world-writable. */
static int safe_dir(const char *dir)
{
	struct stat st;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -1;
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 022))
		return -1;
	return 0;
}

/* The cache directory, created if needed; -1 when there is none to use. */
static int cache_dir(char *dir, size_t len)
{
	const char *off = getenv("PPROFC_CACHE");
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char base[3072];
	if (off && strcmp(off, "off") == 0)
		return -1;
	if (xdg && xdg[0] == '/')
		snprintf(base, sizeof base, "%s", xdg);
	else if (home && home[0] == '/')
		snprintf(base, sizeof base, "%s/.cache", home);
	else
		return -1;
	if (mkdir(base, 0700) != 0 && errno != EEXIST)
		return -1;
	if ((size_t)snprintf(dir, len, "%s/pprofc", base) >= len || safe_dir(dir))
		return -1;
	strncat(dir, "/debug", len - strlen(dir) - 1);
	return safe_dir(dir);
}

static int cache_path(const unsigned char *id, int n, char *path, size_t len)
{
	char dir[3200];
	if (n <= 0 || n > 64 || cache_dir(dir, sizeof dir))
		return -1;
	size_t at = (size_t)snprintf(path, len, "%s/", dir);
	for (int i = 0; i < n && at + 3 < len; i++)
		at += (size_t)snprintf(path + at, len - at, "%02x", id[i]);
	return at + 7 < len ? (snprintf(path + at, len - at, ".debug"), 0) : -1;
}

/* Whether the file at fd is an ELF file whose GNU build ID is id: a copy
 * cut short (a crash before its data reached the disk) is not used. */
static int has_build_id(int fd, const unsigned char *id, int n)
{
	int ok = 0;
	Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	while (e && !ok && (scn = elf_nextscn(e, scn))) {
		Elf_Data *d = gelf_getshdr(scn, &sh) && sh.sh_type == SHT_NOTE ? elf_getdata(scn, NULL) : NULL;
		GElf_Nhdr nh;
		size_t off = 0, name, desc;
		while (d && !ok && (off = gelf_getnote(d, off, &nh, &name, &desc)) > 0)
			ok = nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
			     memcmp((char *)d->d_buf + name, "GNU", 4) == 0 && nh.n_descsz == (GElf_Word)n &&
			     memcmp((char *)d->d_buf + desc, id, (size_t)n) == 0;
	}
	elf_end(e);
	return ok;
}

static int has_compressed(Elf *elf)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	while ((scn = elf_nextscn(elf, scn)))
		if (gelf_getshdr(scn, &sh) && (sh.sh_flags & SHF_COMPRESSED))
			return 1;
	return 0;
}

/* Copies every section of src into dst, inflating the compressed ones.
 * The offsets are laid out anew (sections grow); the program headers,
 * which libdw reads only for addresses, are kept as they are. */
static int copy_inflated(Elf *src, Elf *dst)
{
	GElf_Ehdr eh;
	size_t phnum, shstrndx;
	/* The section order is kept, so e_shstrndx stays right; past
	 * SHN_LORESERVE sections it would live in section 0: not handled. */
	if (!gelf_getehdr(src, &eh) || elf_getphdrnum(src, &phnum) || elf_getshdrstrndx(src, &shstrndx) ||
	    shstrndx >= SHN_LORESERVE || !gelf_newehdr(dst, gelf_getclass(src)) ||
	    !gelf_update_ehdr(dst, &eh))
		return -1;
	if (phnum && !gelf_newphdr(dst, phnum))
		return -1;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(src, (int)i, &ph) || !gelf_update_phdr(dst, (int)i, &ph))
			return -1;
	}
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(src, scn))) {
		Elf_Scn *out = elf_newscn(dst);
		GElf_Shdr sh;
		Elf_Data *in = elf_getdata(scn, NULL), *data;
		if (!out || !gelf_getshdr(scn, &sh) || !gelf_update_shdr(out, &sh))
			return -1;
		if (in) {
			if (!(data = elf_newdata(out)))
				return -1;
			*data = *in;    /* points into src, alive until dst is written */
		}
		if ((sh.sh_flags & SHF_COMPRESSED) && elf_compress(out, 0, 0) < 0)
			return -1;
	}
	return elf_update(dst, ELF_C_NULL) < 0 ? -1 : 0;
}

/* Writes the inflated copy of the file at src to path; 0 when written. */
static int write_copy(const char *src, const char *path)
{
	char tmp[4200];
	elf_version(EV_CURRENT);
	int rc = -1, in = open(src, O_RDONLY | O_CLOEXEC), out = -1;
	Elf *e = in < 0 ? NULL : elf_begin(in, ELF_C_READ_MMAP, NULL), *o = NULL;
	if (!e || elf_kind(e) != ELF_K_ELF || !has_compressed(e))
		goto done;
	snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
	if ((out = mkstemp(tmp)) < 0)
		goto done;
	o = elf_begin(out, ELF_C_WRITE, NULL);
	if (o && copy_inflated(e, o) == 0 && elf_update(o, ELF_C_WRITE) >= 0 &&
	    fchmod(out, 0600) == 0 && rename(tmp, path) == 0)
		rc = 0;
	else
		unlink(tmp);
done:
	elf_end(o);
	elf_end(e);
	if (out >= 0)
		close(out);
	if (in >= 0)
		close(in);
	return rc;
}

/* libdw (0.188) loads libdebuginfod, and with it libcurl and some twenty
 * more libraries, the first time a module's debug file is not found on
 * this machine, whether DEBUGINFOD_URLS is set or not: about 4 ms of a
 * 17 ms dump of a small process.  With no server to ask, that path is
 * never taken: the standard lookup runs only when a local search can
 * succeed (the build-ID lookup found the file, or a file named by the
 * module's debuglink is in one of the places the standard lookup tries:
 * next to the module, in its .debug/, or under /usr/lib/debug). */
static int debuginfod_enabled(void)
{
	const char *urls = getenv("DEBUGINFOD_URLS");
	return urls && *urls;
}

static int debuglink_exists(const char *file_name, const char *link)
{
	char dir[4096], path[8192];
	if (!link || !*link)
		return 0;
	if (link[0] == '/')
		return access(link, R_OK) == 0;
	if (!file_name)
		return 0;
	const char *slash = strrchr(file_name, '/');
	int n = slash ? (int)(slash - file_name) : 0;
	snprintf(dir, sizeof dir, "%.*s", n, file_name);
	const char *const forms[] = { "%s/%s", "%s/.debug/%s", "/usr/lib/debug%s/%s" };
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		snprintf(path, sizeof path, forms[i], dir, link);
		if (access(path, R_OK) == 0)
			return 1;
	}
	return 0;
}

static int find_standard(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
			 const char *file_name, const char *debuglink_file, GElf_Word debuglink_crc,
			 char **debuginfo_file_name)
{
	if (!debuginfod_enabled()) {
		int fd = dwfl_build_id_find_debuginfo(mod, userdata, modname, base, file_name,
						      debuglink_file, debuglink_crc, debuginfo_file_name);
		if (fd >= 0 || !debuglink_exists(file_name, debuglink_file))
			return fd;
	}
	return dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name, debuglink_file,
					    debuglink_crc, debuginfo_file_name);
}

int sym_find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname,
		       Dwarf_Addr base, const char *file_name, const char *debuglink_file,
		       GElf_Word debuglink_crc, char **debuginfo_file_name)
{
	const unsigned char *id = NULL;
	GElf_Addr vaddr;
	char path[4096];
	int idlen = dwfl_module_build_id(mod, &id, &vaddr);
	int have_path = cache_path(id, idlen, path, sizeof path) == 0;
	if (have_path) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && has_build_id(fd, id, idlen) && (*debuginfo_file_name = strdup(path)))
			return fd;
		if (fd >= 0) {
			close(fd);
			unlink(path);   /* damaged: made again below */
		}
	}
	int fd = find_standard(mod, userdata, modname, base, file_name, debuglink_file,
			       debuglink_crc, debuginfo_file_name);
	/* Only a separate debug file: the module's own file is the one we
	 * would unwind and name symbols from anyway. */
	if (fd < 0 || !have_path || !*debuginfo_file_name ||
	    (file_name && strcmp(*debuginfo_file_name, file_name) == 0) ||
	    write_copy(*debuginfo_file_name, path) != 0)
		return fd;
	int copy = open(path, O_RDONLY | O_CLOEXEC);
	char *name = copy >= 0 ? strdup(path) : NULL;
	if (!name) {
		if (copy >= 0)
			close(copy);
		return fd;
	}
	close(fd);
	free(*debuginfo_file_name);
	*debuginfo_file_name = name;
	return copy;
}
