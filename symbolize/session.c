/* session.c — the Dwfl of one target and unwinding snapshots with it.
 *
 * libdwfl allows one dwfl_attach_state() per Dwfl, so the session attaches
 * once with callbacks that answer for "the current snapshot": get_thread
 * knows only its tid, memory_read serves its stack copy, and
 * set_initial_registers pushes its saved registers.  Pointing s->cur at the
 * next snapshot is all it takes to unwind another thread.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_DEPTH 2048

/* libdwfl's find_elf callback has no user argument; the one session that
 * is reporting modules is found here.  A Dwfl is single-threaded anyway. */
static struct sym_session *reporting;

/* Opens the file behind a mapping of the target: through /proc/PID/root (its
 * mount namespace), else /proc/PID/map_files (a deleted or replaced file). */
static int open_target_file(pid_t pid, const char *name, Dwarf_Addr low, char **used)
{
	char path[4352];
	size_t nl = strlen(name);
	static const char deleted[] = " (deleted)";
	int is_deleted = nl > sizeof deleted - 1 &&
			 strcmp(name + nl - (sizeof deleted - 1), deleted) == 0;
	if (!is_deleted) {
		snprintf(path, sizeof path, "/proc/%d/root%s", (int)pid, name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			*used = strdup(path);
			return fd;
		}
	}
	/* map_files entries are named "start-end" of each mapping. */
	char dir[64], prefix[32];
	snprintf(dir, sizeof dir, "/proc/%d/map_files", (int)pid);
	snprintf(prefix, sizeof prefix, "%" PRIx64 "-", (uint64_t)low);
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	struct dirent *de;
	int fd = -1;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			*used = strdup(path);
		break;
	}
	closedir(d);
	return fd;
}

static int find_elf(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base,
		    char **file_name, Elf **elfp)
{
	if (name[0] != '/' || !reporting)
		return dwfl_linux_proc_find_elf(mod, userdata, name, base, file_name, elfp);
	Dwarf_Addr low = 0;
	dwfl_module_info(mod, NULL, &low, NULL, NULL, NULL, NULL, NULL);
	char *used = NULL;
	int fd = open_target_file(reporting->pid, name, low, &used);
	if (fd < 0)
		return dwfl_linux_proc_find_elf(mod, userdata, name, base, file_name, elfp);
	*file_name = used;
	*elfp = NULL;
	return fd;
}

static const Dwfl_Callbacks callbacks = {
	.find_elf = find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.section_address = dwfl_offline_section_address,
};

/* ---- thread callbacks: serve the current snapshot ---------------------- */

static pid_t next_thread(Dwfl *dwfl, void *arg, void **thread_argp)
{
	(void)dwfl;
	struct sym_session *s = arg;
	if (*thread_argp || !s->cur)
		return 0;
	*thread_argp = s;
	return s->cur->tid;
}

static bool get_thread(Dwfl *dwfl, pid_t tid, void *arg, void **thread_argp)
{
	(void)dwfl;
	struct sym_session *s = arg;
	if (!s->cur || tid != s->cur->tid)
		return false;
	*thread_argp = s;
	return true;
}

static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	(void)dwfl;
	struct sym_session *s = arg;
	const struct sym_snapshot *c = s->cur;
	/* Only the copied stack is served: the live process has moved on
	 * since, so anything else would be a guess. */
	if (!c || addr < c->stack_addr || addr - c->stack_addr + sizeof *result > c->stack_len)
		return false;
	memcpy(result, c->stack + (addr - c->stack_addr), sizeof *result);
	return true;
}

static bool set_initial_registers(Dwfl_Thread *thread, void *thread_arg)
{
	struct sym_session *s = thread_arg;
	const struct user_regs_struct *r = s->cur->regs;
	/* DWARF register numbers for x86_64: rax rdx rcx rbx rsi rdi rbp rsp
	 * r8..r15, then the return address column (rip). */
	Dwarf_Word regs[17] = {
		r->rax, r->rdx, r->rcx, r->rbx, r->rsi, r->rdi, r->rbp, r->rsp,
		r->r8,  r->r9,  r->r10, r->r11, r->r12, r->r13, r->r14, r->r15, r->rip,
	};
	if (!dwfl_thread_state_registers(thread, 0, 17, regs))
		return false;
	dwfl_thread_state_register_pc(thread, r->rip);
	return true;
}

static const Dwfl_Thread_Callbacks thread_callbacks = {
	.next_thread = next_thread,
	.get_thread = get_thread,
	.memory_read = memory_read,
	.set_initial_registers = set_initial_registers,
};

int sym_report_modules(struct sym_session *s)
{
	reporting = s;
	dwfl_report_begin(s->dwfl);
	int r = dwfl_linux_proc_report(s->dwfl, s->pid);
	dwfl_report_end(s->dwfl, NULL, NULL);
	return r;
}

struct sym_session *sym_open(pid_t pid, char *err, size_t errlen)
{
	struct sym_session *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->pid = pid;
	s->callbacks = callbacks;
	s->callbacks.debuginfo_path = &s->debuginfo_path;
	s->dwfl = dwfl_begin(&s->callbacks);
	if (!s->dwfl) {
		snprintf(err, errlen, "dwfl_begin failed: %s", dwfl_errmsg(-1));
		free(s);
		return NULL;
	}
	int r = sym_report_modules(s);
	if (r != 0) {
		snprintf(err, errlen, "cannot read the modules of PID %d: %s", (int)pid,
			 r > 0 ? strerror(r) : dwfl_errmsg(-1));
		sym_close(s);
		return NULL;
	}
	if (!dwfl_attach_state(s->dwfl, NULL, pid, &thread_callbacks, s)) {
		snprintf(err, errlen, "cannot prepare unwinding for PID %d: %s", (int)pid,
			 dwfl_errmsg(-1));
		sym_close(s);
		return NULL;
	}
	return s;
}

struct prepare_ctx {
	struct sym_session *s;
	char exe[4096];
};

static int prepare_module(Dwfl_Module *mod, void **ud, const char *name, Dwarf_Addr start,
			  void *arg)
{
	(void)ud;
	struct prepare_ctx *c = arg;
	if (strcmp(name, c->exe) == 0 || strstr(name, "/libc.so")) {
		Dwarf_Addr bias;
		sym_module_warm(c->s, mod);
		dwfl_module_getdwarf(mod, &bias);
		dwfl_module_eh_cfi(mod, &bias);
		/* The first line lookup builds the module's CU index. */
		dwfl_module_getsrc(mod, start);
		dwfl_module_addrdie(mod, start, &bias);
	}
	return DWARF_CB_OK;
}

void sym_prepare(struct sym_session *s)
{
	struct prepare_ctx c = { .s = s };
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/exe", (int)s->pid);
	ssize_t n = readlink(path, c.exe, sizeof c.exe - 1);
	c.exe[n > 0 ? n : 0] = 0;
	dwfl_getmodules(s->dwfl, prepare_module, &c, 0);
}

/* ---- unwinding --------------------------------------------------------- */

struct walk {
	uint64_t pcs[MAX_DEPTH];
	int activation[MAX_DEPTH];
	size_t n;
};

static int on_frame(Dwfl_Frame *frame, void *arg)
{
	struct walk *w = arg;
	Dwarf_Addr pc;
	bool act;
	if (!dwfl_frame_pc(frame, &pc, &act))
		return DWARF_CB_ABORT;
	if (w->n == MAX_DEPTH)
		return DWARF_CB_ABORT;
	w->pcs[w->n] = pc;
	w->activation[w->n] = act;
	w->n++;
	return DWARF_CB_OK;
}

static int push_frames(struct sym_stack *out, size_t *cap, const struct sym_resolved *r,
		       uint64_t pc)
{
	if (out->n + r->n > *cap) {
		size_t nc = *cap ? *cap * 2 : 32;
		while (nc < out->n + r->n)
			nc *= 2;
		struct sym_frame *f = realloc(out->frames, nc * sizeof *f);
		if (!f)
			return -1;
		out->frames = f;
		*cap = nc;
	}
	for (size_t i = 0; i < r->n; i++) {
		struct sym_frame *f = &out->frames[out->n++];
		*f = r->frames[i];
		/* The cache is keyed by the looked-up address; offsets are
		 * reported from the pc itself (the return address for callers). */
		f->pc = pc;
		f->func_offset += pc - f->lookup_pc;
		f->module_offset += pc - f->lookup_pc;
	}
	return 0;
}

int sym_unwind(struct sym_session *s, const struct sym_snapshot *snap, struct sym_stack *out)
{
	memset(out, 0, sizeof *out);
	struct walk *w = malloc(sizeof *w);
	if (!w)
		return -1;
	w->n = 0;
	s->cur = snap;
	int r = dwfl_getthread_frames(s->dwfl, snap->tid, on_frame, w);
	const char *why = r != 0 ? dwfl_errmsg(-1) : NULL;
	s->cur = NULL;
	out->complete = r == 0;
	if (!out->complete) {
		uint64_t last = w->n ? w->pcs[w->n - 1] : snap->regs->rip;
		if (w->n == MAX_DEPTH)
			snprintf(out->stop_reason, sizeof out->stop_reason,
				 "more than %d frames", MAX_DEPTH);
		else
			snprintf(out->stop_reason, sizeof out->stop_reason, "%s after 0x%" PRIx64,
				 why ? why : "unknown error", last);
	}
	size_t cap = 0;
	for (size_t i = 0; i < w->n; i++) {
		/* A caller's pc is a return address: the call is just before it. */
		uint64_t lookup = (i == 0 || w->activation[i]) ? w->pcs[i] : w->pcs[i] - 1;
		const struct sym_resolved *res = sym_resolve(s, lookup);
		if (!res || push_frames(out, &cap, res, w->pcs[i])) {
			free(w);
			sym_stack_free(out);
			return -1;
		}
	}
	free(w);
	return 0;
}

void sym_stack_free(struct sym_stack *st)
{
	free(st->frames);
	st->frames = NULL;
	st->n = 0;
}

void sym_close(struct sym_session *s)
{
	if (!s)
		return;
	if (reporting == s)
		reporting = NULL;
	sym_cache_free(s);
	if (s->dwfl)
		dwfl_end(s->dwfl);
	sym_strings_free(&s->strings);
	free(s->debuginfo_path);
	free(s);
}
