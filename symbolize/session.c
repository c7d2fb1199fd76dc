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
#include <time.h>
#include <unistd.h>

#define MAX_DEPTH SYM_MAX_DEPTH

/* libdwfl's find_elf callback has no user argument; the session that is
 * reporting modules is found here.  Per thread: a Dwfl is driven by one
 * thread at a time, and sessions in other threads have their own. */
static _Thread_local struct sym_session *reporting;

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
	.find_debuginfo = sym_find_debuginfo,
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
	if (!c || addr < c->stack_addr || c->stack_len < sizeof *result ||
	    addr - c->stack_addr > c->stack_len - sizeof *result)
		return false;
	memcpy(result, c->stack + (addr - c->stack_addr), sizeof *result);
	return true;
}

/* Read without stopping the thread: only SP and PC are known. */
static int partial(const struct sym_snapshot *snap)
{
	return (snap->regs->known & ARCH_REGS_ALL) != ARCH_REGS_ALL;
}

static bool set_initial_registers(Dwfl_Thread *thread, void *thread_arg)
{
	struct sym_session *s = thread_arg;
	const struct arch_regs *r = s->cur->regs;
	if (partial(s->cur)) {
		/* Only what /proc/PID/task/TID/syscall told: sp and pc (and a
		 * candidate bp when retrying), or what a goroutine saved: sp,
		 * pc and bp.  The rest stays undefined. */
		Dwarf_Word sp = REG(r, SP), bp = s->rbp_guess;
		if (!bp && (r->known & REGBIT(BP)))
			bp = REG(r, BP);
		if (!dwfl_thread_state_registers(thread, REGNAME(SP), 1, &sp))
			return false;
		if (bp && !dwfl_thread_state_registers(thread, REGNAME(BP), 1, &bp))
			return false;
		dwfl_thread_state_register_pc(thread, REG(r, PC));
		return true;
	}
	/* The array is in DWARF order already (arch/regs.h). */
	Dwarf_Word regs[ARCH_NREGS];
	for (int i = 0; i < ARCH_NREGS; i++)
		regs[i] = r->v[i];
	if (!dwfl_thread_state_registers(thread, 0, ARCH_NREGS, regs))
		return false;
	dwfl_thread_state_register_pc(thread, REG(r, PC));
	return true;
}

static const Dwfl_Thread_Callbacks thread_callbacks = {
	.next_thread = next_thread,
	.get_thread = get_thread,
	.memory_read = memory_read,
	.set_initial_registers = set_initial_registers,
};

/* Whether /proc/ID/maps gives anything: not when ID is gone, nor when it
 * is a thread that exited (a zombie has no memory map left). */
static int maps_answer(pid_t id)
{
	char path[64], c;
	snprintf(path, sizeof path, "/proc/%d/maps", (int)id);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, &c, 1);
	close(fd);
	return n == 1;
}

int sym_report_modules(struct sym_session *s)
{
	/* The id sym_open was given may be a thread standing for a process
	 * whose main thread exited; once that thread exits too, the thread
	 * last unwound (alive when its snapshot was taken) stands in. */
	if (s->last_tid && s->last_tid != s->pid && !maps_answer(s->pid) && maps_answer(s->last_tid))
		s->pid = s->last_tid;
	reporting = s;
	dwfl_report_begin(s->dwfl);
	int r = dwfl_linux_proc_report(s->dwfl, s->pid);
	dwfl_report_end(s->dwfl, NULL, NULL);
	if (getenv("ZLDEBUG")) fprintf(stderr, "DEBUG report pid %d cur %d -> %d\n", (int)s->pid, s->cur ? (int)s->cur->tid : -1, r);
	return r;
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A pc in no module is usually a library loaded after the modules were
 * read (dlopen), but may also be JIT code or garbage that no re-read will
 * ever explain: then re-reading /proc/PID/maps (100 000 lines in some
 * processes) on every sample would be the profile's main cost.  So after
 * each re-read, wait ten times what it cost, and at least 100 ms. */
int sym_refresh_for(struct sym_session *s, uint64_t pc)
{
	if (dwfl_addrmodule(s->dwfl, pc))
		return 0;
	uint64_t start = monotonic_ns();
	if (start < s->next_refresh_ns)
		return 0;
	sym_report_modules(s);
	uint64_t cost = monotonic_ns() - start;
	s->next_refresh_ns = start + cost + (cost * 10 > 100000000u ? cost * 10 : 100000000u);
	s->modules_gen++;
	return dwfl_addrmodule(s->dwfl, pc) != NULL;
}

int sym_refresh_now(struct sym_session *s, uint64_t pc)
{
	if (dwfl_addrmodule(s->dwfl, pc))
		return 0;
	s->next_refresh_ns = 0;
	return sym_refresh_for(s, pc);
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

uint64_t sym_modules_generation(const struct sym_session *s)
{
	return s->modules_gen;
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
	uint64_t sps[MAX_DEPTH];        /* each frame's sp, 0 when unknown */
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
	Dwarf_Word sp = 0;
	if (dwfl_frame_reg(frame, 7, &sp) != 0)
		sp = 0;
	w->pcs[w->n] = pc;
	w->sps[w->n] = sp;
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

/* One unwinding of the current snapshot into w; returns libdwfl's result. */
static int walk(struct sym_session *s, const struct sym_snapshot *snap, struct walk *w,
		uint64_t rbp_guess)
{
	w->n = 0;
	s->cur = snap;
	s->rbp_guess = rbp_guess;
	int r = dwfl_getthread_frames(s->dwfl, snap->tid, on_frame, w);
	s->cur = NULL;
	return r;
}

/* Go code has no CFI (its binaries carry no .eh_frame for it) and Go's
 * runtime ends its stacks in known places: a goroutine's at
 * runtime.goexit, a thread's own (g0) stack at runtime.clone or, for the
 * first thread, runtime.rt0_go (runtime.mstart, which both call, is the
 * top of a g0 stack for Go's own traceback), and a scheduler switching
 * stacks (mcall, morestack) ends one too, as Go's own tracebacks end
 * there.  Since Go 1.17 assembly functions carry an ".abi0" suffix in ELF
 * symbols (names from pclntab come without it). */
static int is_go_root(const char *name)
{
	static const char *const roots[] = {
		"runtime.goexit", "runtime.goexit.abi0", "runtime.clone", "runtime.clone.abi0",
		"runtime.rt0_go", "runtime.rt0_go.abi0", "runtime.mcall", "runtime.morestack",
		"runtime.morestack.abi0", "runtime.mstart", "runtime.mstart.abi0",
	};
	for (size_t i = 0; name && i < sizeof roots / sizeof roots[0]; i++)
		if (strcmp(name, roots[i]) == 0)
			return 1;
	return 0;
}

/* The CFI row (.eh_frame, else .debug_frame) that describes pc, looked
 * up as libdwfl's unwinder does; the caller frees it.  0 if none does. */
Dwarf_Frame *sym_cfi_at(struct sym_session *s, uint64_t pc)
{
	Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, pc);
	for (int i = 0; mod && i < 2; i++) {
		Dwarf_Addr bias;
		Dwarf_CFI *cfi = i == 0 ? dwfl_module_eh_cfi(mod, &bias) : dwfl_module_dwarf_cfi(mod, &bias);
		Dwarf_Frame *frame;
		if (cfi && dwarf_cfi_addrframe(cfi, pc - bias, &frame) == 0)
			return frame;
	}
	return NULL;
}

/* Whether the CFI at pc says the caller's return address is undefined:
 * the way a thread's first frame declares that nothing called it (glibc's
 * _start and clone3 do, and so does any crt1 or runtime that follows the
 * psABI).  This is a fact of the code, not of its name, so it holds in a
 * stripped libc and a stripped binary as well.  Cached by pc: every unwind
 * asks it, some several times, and libdw parses the FDE anew each time. */
static int cfi_outermost(struct sym_session *s, uint64_t pc)
{
	uint64_t *slot = &s->outermost[(pc ^ pc >> 9) % (sizeof s->outermost / sizeof *s->outermost)];
	if (*slot >> 1 == pc)
		return (int)(*slot & 1);
	Dwarf_Frame *frame = sym_cfi_at(s, pc);
	Dwarf_Op mem[3], *ops = NULL;
	size_t nops = 1;
	int ra = frame ? dwarf_frame_info(frame, NULL, NULL, NULL) : -1;
	int undefined = ra >= 0 && dwarf_frame_register(frame, ra, mem, &ops, &nops) == 0 &&
			nops == 0 && ops == mem;
	free(frame);
	*slot = pc << 1 | (uint64_t)undefined;
	return undefined;
}

/* Go's scheduler switches stacks in runtime.mcall and runtime.morestack:
 * what a walk finds past them is the other stack's leftovers (seen:
 * "runtime.mcall, runtime.newproc.abi0, ??"), not callers.  And a
 * goroutine's stack begins at runtime.goexit, whose frame is the fake
 * return address Go puts at the top: past it lie stale words of the
 * stack (seen on 58 of 10,000 goroutines: "return address 0x280 in no
 * executable mapping after runtime.goexit").  Go's own tracebacks end
 * at all three; so does ours. */
static int ends_go_stack(const char *name)
{
	static const char *const ends[] = { "runtime.mcall", "runtime.morestack", "runtime.morestack.abi0",
					    "runtime.goexit", "runtime.goexit.abi0" };
	for (size_t i = 0; name && i < sizeof ends / sizeof ends[0]; i++)
		if (strcmp(name, ends[i]) == 0)
			return 1;
	return 0;
}

static void cut_at_stack_switch(struct sym_session *s, struct walk *w)
{
	for (size_t i = 0; i + 1 < w->n; i++) {
		uint64_t pc = (i == 0 || w->activation[i]) ? w->pcs[i] : w->pcs[i] - 1;
		const struct sym_resolved *r = sym_resolve(s, pc);
		const char *name = r && r->n ? r->frames[r->n - 1].function : NULL;
		if (ends_go_stack(name)) {
			w->n = i + 1;
			return;
		}
	}
}

/* Reads the executable mappings of /proc/PID/maps into s->exec; -1 if
 * the file cannot be read (the caller then keeps every frame). */
static int read_exec_maps(struct sym_session *s)
{
	char path[64], *line = NULL;
	size_t cap = 0;
	snprintf(path, sizeof path, "/proc/%d/maps", (int)s->pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	s->nexec = 0;
	while (getline(&line, &cap, f) > 0) {
		unsigned long long lo, hi;
		char perms[5];
		if (sscanf(line, "%llx-%llx %4s", &lo, &hi, perms) != 3 || perms[2] != 'x')
			continue;
		if (s->nexec + 2 > s->capexec) {
			size_t c = s->capexec ? 2 * s->capexec : 64;
			uint64_t *v = realloc(s->exec, c * sizeof *v);
			if (!v)
				break;
			s->exec = v;
			s->capexec = c;
		}
		s->exec[s->nexec++] = lo;
		s->exec[s->nexec++] = hi;
	}
	free(line);
	fclose(f);
	s->exec_read = 1;
	return 0;
}

static int in_exec_maps(const struct sym_session *s, uint64_t addr)
{
	for (size_t i = 0; i + 1 < s->nexec; i += 2)
		if (s->exec[i] <= addr && addr < s->exec[i + 1])
			return 1;
	return 0;
}

/* Whether addr is in an executable mapping of the process (JIT code is
 * in one, with no module: a frame there is real).  Read once
 * per session and again on a miss (code mapped since: JIT), at most
 * every 100 ms: a walk that did not reach a root asks for every frame,
 * and a dump of many such threads would otherwise read the maps as many
 * times. */
static int executable_at(struct sym_session *s, uint64_t addr)
{
	if (s->exec_read && in_exec_maps(s, addr))
		return 1;
	uint64_t now = monotonic_ns();
	if (s->exec_read && now < s->next_exec_read_ns)
		return 0;
	s->next_exec_read_ns = now + 100000000u;
	if (read_exec_maps(s))
		return 1;       /* cannot tell: keep the frame */
	return in_exec_maps(s, addr);
}

/* A caller's return address outside every executable mapping is no
 * return address: libdwfl's frame-pointer fallback (code without CFI, as
 * Go's without .debug_frame) can take one from a slot that holds data.
 * The walk ends before it, not at a root.  Returns whether it was cut. */
static int cut_at_unmapped(struct sym_session *s, struct walk *w)
{
	for (size_t i = 1; i < w->n; i++) {
		if (!dwfl_addrmodule(s->dwfl, w->pcs[i] - 1) && !executable_at(s, w->pcs[i] - 1)) {
			w->n = i;
			return 1;
		}
	}
	return 0;
}

/* libdwfl ends a walk as a success whenever it cannot compute a return
 * address: at the real root, where the CFI leaves it undefined, but also
 * when it depends on a register not known (a blocked thread read without
 * stopping it) or on memory outside the stack copy.  So a walk reached the
 * thread's root only if its last frame is one by the CFI, or is one of Go's
 * roots (Go code has no CFI). */
static int ends_at_root(struct sym_session *s, const struct walk *w)
{
	if (!w->n)
		return 0;
	size_t i = w->n - 1;
	uint64_t pc = (i == 0 || w->activation[i]) ? w->pcs[i] : w->pcs[i] - 1;
	if (cfi_outermost(s, pc))
		return 1;
	const struct sym_resolved *r = sym_resolve(s, pc);
	return r && r->n && is_go_root(r->frames[r->n - 1].function);
}

static int32_t rel32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return (int32_t)v;
}

/* A PLT entry jumps through its GOT slot: "jmp *disp32(%rip)" (ff 25),
 * maybe after endbr64 and a bnd prefix (.plt.sec).  Returns where the slot
 * points now, or the address itself if it is not such an entry. */
static uint64_t through_plt(const struct sym_snapshot *snap, uint64_t addr)
{
	unsigned char b[11];
	uint64_t slot;
	if (snap->read_code(snap->tid, addr, b, sizeof b) != (ssize_t)sizeof b)
		return addr;
	size_t i = memcmp(b, "\xf3\x0f\x1e\xfa", 4) == 0 ? 4 : 0;     /* endbr64 */
	i += b[i] == 0xf2;                                              /* bnd */
	if (b[i] != 0xff || b[i + 1] != 0x25)
		return addr;
	uint64_t next = addr + i + 6;
	if (snap->read_code(snap->tid, next + (uint64_t)(int64_t)rel32(b + i + 2), &slot, 8) != 8)
		return addr;
	return slot;
}

/* What the code says about one link of a walk: whether the call that
 * pushed return address ret called the function starting at callee. */
enum link { LINK_UNKNOWN, LINK_PROVED, LINK_REFUTED };

/* The callee of a link is JIT code: a function in an executable mapping
 * with no file behind it, whose start nothing tells; it is no function of
 * a module, though, which is enough to refute a call to one of those. */
#define CALLEE_JIT UINT64_MAX

/* "call rel32" (e8), to the function or to its PLT entry, and "call
 * *disp32(%rip)" (ff 15: a GOT slot, -fno-plt) name their target, which
 * proves or refutes the link; a call through a register or memory (virtual
 * calls, function pointers: ff /2) leaves it unknown; no call at all
 * refutes it.  The GOT is data, but it holds the same value as when the
 * call was made: the dynamic linker fills each slot once. */
static enum link check_link(struct sym_session *s, const struct sym_snapshot *snap, uint64_t ret,
			    uint64_t callee)
{
	unsigned char b[7];
	uint64_t target = 0;
	if (ret < 7 || snap->read_code(snap->tid, ret - 7, b, 7) != 7)
		return LINK_REFUTED;
	if (b[2] == 0xe8)
		target = through_plt(snap, ret + (uint64_t)(int64_t)rel32(b + 3));
	else if (b[1] == 0xff && b[2] == 0x15 &&
		 snap->read_code(snap->tid, ret + (uint64_t)(int64_t)rel32(b + 3), &target, 8) != 8)
		return LINK_UNKNOWN;
	if (target && callee == CALLEE_JIT)
		return dwfl_addrmodule(s->dwfl, target) ? LINK_REFUTED : LINK_UNKNOWN;
	if (target)
		return !callee ? LINK_UNKNOWN : target == callee ? LINK_PROVED : LINK_REFUTED;
	for (int len = 2; len <= 7; len++)
		if (b[7 - len] == 0xff && (b[7 - len + 1] & 0x38) == 0x10)
			return LINK_UNKNOWN;
	return LINK_REFUTED;
}

/* The start of the function holding frame i of w (by its symbol, or by
 * the FDE that covers it in a module without symbols), CALLEE_JIT for
 * JIT code, or 0. */
static uint64_t function_start(struct sym_session *s, const struct walk *w, size_t i)
{
	uint64_t pc = (i == 0 || w->activation[i]) ? w->pcs[i] : w->pcs[i] - 1;
	if (!dwfl_addrmodule(s->dwfl, pc))
		return executable_at(s, pc) ? CALLEE_JIT : 0;
	const struct sym_resolved *r = sym_resolve(s, pc);
	const struct sym_frame *f = r && r->n ? &r->frames[r->n - 1] : NULL;
	return f && f->has_offset ? pc - f->func_offset : 0;
}

/* Whether the code refutes none of the links from frame `from` outwards. */
static int links_hold(struct sym_session *s, const struct sym_snapshot *snap, const struct walk *w,
		      size_t from)
{
	for (size_t i = from; i + 1 < w->n; i++)
		if (check_link(s, snap, w->pcs[i + 1], function_start(s, w, i)) == LINK_REFUTED)
			return 0;
	return 1;
}

/* For a snapshot taken without stopping: rbp is unknown, and code built
 * with frame pointers needs it (its CFA is rbp + 16).  The plain walk went
 * as far as it could; its last frame F, whose sp is known, is the one that
 * needs rbp.  In a frame-pointer frame, rbp points just below the slot of
 * F's return address, somewhere above that sp.  But a stack also holds
 * stale return addresses, left by calls that have returned, and taking one
 * of those invents callers (seen on chromium: "__poll, ??, ??, operator
 * new, ..." where --stop-all had no operator new).  So a slot is taken
 * only if F's function is known (its start, by symbol or FDE; or F is JIT
 * code, whose caller did not call any function of a module), the code
 * refutes none of the links from F outwards (a return address after a
 * direct call, or one through the PLT or GOT, to some other function than
 * the frame below it), and the walk reaches the thread's root.  A stale
 * chain fails this: where it rejoins the live stack, the live return
 * address was pushed by a call to another function (and nearer stale
 * slots were pushed by calls to F's callees, not to F).  What cannot be
 * checked is not guessed: the stack ends at F, incomplete, a prefix of
 * the truth.  If F is JIT code, its caller may be JIT code too, whose
 * return address is in no module: so only the nearest slot holding code
 * of either kind is tried, lest JIT callers be skipped for a module's
 * frame further up.  Returns 0 with the longer walk in w, else -1. */
static int walk_guessing_rbp(struct sym_session *s, const struct sym_snapshot *snap,
			     const struct walk *plain, struct walk *w)
{
	const uint64_t lo = snap->stack_addr, hi = snap->stack_addr + snap->stack_len;
	if (!plain->n || !snap->read_code)
		return -1;
	uint64_t from = plain->sps[plain->n - 1] ? plain->sps[plain->n - 1] : REG(snap->regs, SP);
	uint64_t start = function_start(s, plain, plain->n - 1);
	if (from < lo)
		from = lo;
	const int jit = start == CALLEE_JIT;
	int tried = 0;
	for (uint64_t slot = (from + 7) & ~7ULL; start && slot + 8 <= hi && tried < (jit ? 1 : 8);
	     slot += 8) {
		uint64_t v;
		memcpy(&v, snap->stack + (slot - lo), 8);
		if (slot < lo + 8 || !(dwfl_addrmodule(s->dwfl, v) || (jit && executable_at(s, v))))
			continue;
		if (check_link(s, snap, v, start) == LINK_REFUTED) {
			if (jit)
				break;          /* the nearest slot was the only one */
			continue;
		}
		tried++;
		if (walk(s, snap, w, slot - 8) != 0 || w->n <= plain->n || w->pcs[plain->n] != v ||
		    memcmp(w->pcs, plain->pcs, plain->n * sizeof *plain->pcs) != 0 ||
		    !ends_at_root(s, w) || !links_hold(s, snap, w, plain->n - 1))
			continue;
		return 0;
	}
	return -1;
}

/* Whether CFI (.eh_frame or .debug_frame) describes pc. */
static int has_cfi(struct sym_session *s, uint64_t pc)
{
	Dwarf_Frame *frame = sym_cfi_at(s, pc);
	free(frame);
	return frame != NULL;
}

/* The innermost function has no CFI, so libdwfl unwinds it by its frame
 * pointer; but compilers leave leaf functions without one (gcc does even
 * with -fno-omit-frame-pointer), and no function has one before its
 * prologue ran: rbp is then the caller's, and the caller vanishes from
 * the stack.  It is so if [rsp] is the return address of a direct call to
 * this very function and the function does not set up rbp (or has not
 * yet).  Then the stack is pc followed by a walk from that return
 * address.  Returns 0 with that walk in w, else -1 (keep the plain one). */
static int walk_frameless_leaf(struct sym_session *s, const struct sym_snapshot *snap,
			       const struct walk *plain, struct walk *w)
{
	const struct arch_regs *r = snap->regs;
	const struct sym_resolved *res;
	unsigned char call[5], entry[5];
	uint64_t ret, sp = REG(r, SP), pc = REG(r, PC);
	if (partial(snap) || !snap->read_code || sp < snap->stack_addr ||
	    sp - snap->stack_addr + 8 > snap->stack_len || has_cfi(s, pc) ||
	    !(res = sym_resolve(s, pc)) || !res->n || !res->frames[res->n - 1].has_offset)
		return -1;
	uint64_t start = pc - res->frames[res->n - 1].func_offset;
	memcpy(&ret, snap->stack + (sp - snap->stack_addr), 8);
	if ((plain->n > 1 && plain->pcs[1] == ret) || ret < 5 ||
	    snap->read_code(snap->tid, ret - 5, call, 5) != 5 || call[0] != 0xe8 ||
	    snap->read_code(snap->tid, start, entry, 5) != 5)
		return -1;
	int32_t rel;
	memcpy(&rel, call + 1, 4);
	size_t push = memcmp(entry, "\xf3\x0f\x1e\xfa", 4) == 0 ? 4 : 0;   /* endbr64 */
	if (ret + (uint64_t)(int64_t)rel != start || (entry[push] == 0x55 && pc > start + push))
		return -1;
	struct arch_regs caller = *r;
	REG(&caller, PC) = ret;
	REG(&caller, SP) = sp + 8;
	struct sym_snapshot from = *snap;
	from.regs = &caller;
	/* An error past a root is no failure (see sym_unwind_traced). */
	walk(s, &from, w, 0);
	if (!ends_at_root(s, w) || w->n == MAX_DEPTH)
		return -1;
	memmove(w->pcs + 1, w->pcs, w->n * sizeof *w->pcs);
	memmove(w->sps + 1, w->sps, w->n * sizeof *w->sps);
	memmove(w->activation + 1, w->activation, w->n * sizeof *w->activation);
	w->pcs[0] = pc;
	w->sps[0] = sp;
	w->activation[0] = 1;
	w->activation[1] = 0;       /* a return address, no longer the interrupted pc */
	w->n++;
	return 0;
}

/* The code half of newborn_thread: pc follows a syscall at the end of an
 * FDE.  A fact of pc alone (code does not change), so the memo asks it to
 * know that no snapshot at this pc, whatever its rax, is a newborn. */
static int newborn_site(struct sym_session *s, const struct sym_snapshot *snap)
{
	const uint64_t pc = REG(snap->regs, PC);
	unsigned char insn[2];
	return snap->read_code && pc > 3 && snap->read_code(snap->tid, pc - 2, insn, 2) == 2 &&
	       insn[0] == 0x0f && insn[1] == 0x05 && !has_cfi(s, pc - 2) && has_cfi(s, pc - 3);
}

/* A thread made by clone or clone3 starts life at the instruction after
 * the syscall, in code glibc leaves without CFI on purpose (the FDE ends
 * just before the syscall, as the parent's frame rules would be wrong on
 * the child's fresh stack), with rax 0 and nothing on its stack yet.
 * Caught there (by a group stop, or a sample as it is born), it has one
 * frame, which is its root; a walk would take the parent's rbp and invent
 * the parent's callers.  Told by the code, not by a name, so it holds in
 * a stripped libc; and not in Go, whose code has no CFI at all. */
static int newborn_thread(struct sym_session *s, const struct sym_snapshot *snap)
{
	return !partial(snap) && REG(snap->regs, AX) == 0 && newborn_site(s, snap);
}

/* The parent at the same site: its clone or clone3 call under way (a
 * sample at the system call's entry, as threadcreate's are) or just
 * returned.  No CFI describes pc, so libdwfl would stop there (or, with
 * glibc's debug info, find its symbol and guess); but the FDE's last row,
 * at the instruction before the syscall, still holds at pc: a syscall
 * changes no stack pointer and no stack slot.  So the walk is the one
 * from pc - 3 (inside that instruction: the FDE's row there), with pc
 * put back as the innermost frame.  Returns 0 with that walk in w. */
static int walk_from_clone_site(struct sym_session *s, const struct sym_snapshot *snap, struct walk *w)
{
	const uint64_t pc = REG(snap->regs, PC);
	if (REG(snap->regs, AX) == 0 && !partial(snap))
		return -1;      /* the child: newborn_thread's case */
	if (!newborn_site(s, snap))
		return -1;
	struct arch_regs at = *snap->regs;
	REG(&at, PC) = pc - 3;
	struct sym_snapshot from = *snap;
	from.regs = &at;
	if (walk(s, &from, w, 0) != 0 || !w->n || !ends_at_root(s, w))
		return -1;
	w->pcs[0] = pc;
	return 0;
}

/* libdwfl ends a walk quietly, as if at the root, when it cannot read the
 * memory a frame needs: so does a thread whose sp is bogus (no stack was
 * copied there). */
static int sp_outside_copy(const struct sym_snapshot *snap)
{
	uint64_t sp = REG(snap->regs, SP);
	return sp < snap->stack_addr || sp >= snap->stack_addr + snap->stack_len;
}

/* A copy cut at its size limit (perf_event's is at most 65528 bytes):
 * libdwfl ends a walk quietly, or with an error, when the next frame is
 * beyond the copy.  Either way, if the walk did not reach the root and its
 * last frame is near the end of the copy, the copy is what ended it. */
static int ran_out_of_copy(struct sym_session *s, const struct sym_snapshot *snap,
			   const struct walk *w, int r)
{
	if (!snap->stack_cut || (r == 0 && ends_at_root(s, w)))
		return 0;
	uint64_t end = snap->stack_addr + snap->stack_len;
	uint64_t sp = w->n && w->sps[w->n - 1] ? w->sps[w->n - 1] : REG(snap->regs, SP);
	return sp + 1024 >= end;
}

/* Names the walk's frames into out. */
static int push_resolved(struct sym_session *s, struct sym_stack *out, struct walk *w)
{
	size_t cap = 0;
	for (size_t i = 0; i < w->n; i++) {
		/* A caller's pc is a return address: the call is just before it. */
		uint64_t lookup = (i == 0 || w->activation[i]) ? w->pcs[i] : w->pcs[i] - 1;
		const struct sym_resolved *res = sym_resolve(s, lookup);
		if (!res || push_frames(out, &cap, res, w->pcs[i])) {
			sym_stack_free(out);
			return -1;
		}
	}
	return 0;
}

/* For the memo: whether out is the plain walk alone (see internal.h), and
 * its pcs into t.  Code, not data, decides newborn_site: if it holds at
 * this pc, another snapshot there (rax 0) would take the newborn path. */
static void trace_plain(struct sym_session *s, const struct sym_snapshot *snap,
			const struct walk *w, const struct sym_stack *out, int plain,
			struct sym_unwind_trace *t)
{
	t->plain = plain && out->complete && !out->cut_short && w->n && !newborn_site(s, snap) &&
		   snap->read_code;
	t->n = t->plain ? w->n : 0;
	memcpy(t->pcs, w->pcs, t->n * sizeof *w->pcs);
}

int sym_unwind(struct sym_session *s, const struct sym_snapshot *snap, struct sym_stack *out)
{
	return sym_unwind_traced(s, snap, out, NULL);
}

int sym_unwind_traced(struct sym_session *s, const struct sym_snapshot *snap,
		      struct sym_stack *out, struct sym_unwind_trace *t)
{
	memset(out, 0, sizeof *out);
	if (t)
		t->plain = 0, t->n = 0;
	/* Two walks of 40 KiB each, kept by the session: allocated anew for
	 * each unwind, glibc gave them back to the system at each free and
	 * the kernel cleared fresh pages for the next (most of the time of a
	 * dump of 2,000 goroutines). */
	if (!s->walks && !(s->walks = malloc(2 * sizeof(struct walk))))
		return -1;
	struct walk *w = s->walks;
	s->last_tid = snap->tid;
	sym_refresh_for(s, REG(snap->regs, PC));
	if (newborn_thread(s, snap)) {
		w->pcs[0] = REG(snap->regs, PC);
		w->sps[0] = REG(snap->regs, SP);
		w->activation[0] = 1;
		w->n = 1;
		out->complete = 1;
		return push_resolved(s, out, w);
	}
	int r = walk(s, snap, w, 0);
	/* Only the first walk, as the snapshot came, is memoized: for one read
	 * without stopping, the walk from sp and pc alone, before any guess
	 * of rbp (memo.c says why sp and pc are then all it used). */
	int plain = r == 0;
	if ((r != 0 || !ends_at_root(s, w)) && walk_from_clone_site(s, snap, &w[1]) == 0) {
		w[0] = w[1];
		r = 0;
		plain = 0;
	}
	/* Unwinding stopped at a pc in no known module: read them again. */
	if (r != 0 && w->n && sym_refresh_for(s, w->pcs[w->n - 1] - (w->n > 1)))
		r = walk(s, snap, w, 0);
	size_t before = w->n;
	cut_at_stack_switch(s, w);
	if (w->n < before) {
		r = 0;          /* it ends at a root: whatever came after is not ours */
		plain = 0;
	}
	/* Past a root there is nothing of this stack: libdwfl fails there
	 * in a Go binary without .debug_frame (-ldflags=-w), whose roots
	 * pclntab names (runtime.goexit, runtime.mcall...). */
	if (r != 0 && ends_at_root(s, w))
		r = 0;
	const char *why = r != 0 ? dwfl_errmsg(-1) : NULL;
	/* libdwfl says "No DWARF information found" where JIT code ends a
	 * walk with all registers known: its frame pointer led nowhere. */
	if (r != 0 && !partial(snap) && w->n && function_start(s, w, w->n - 1) == CALLEE_JIT)
		why = "JIT code (in no file, no CFI) with no frame pointer to follow";
	char unmapped[96];
	if (!ends_at_root(s, w) && cut_at_unmapped(s, w)) {
		/* pcs[n] is the address cut off: the array holds it still */
		snprintf(unmapped, sizeof unmapped, "return address 0x%" PRIx64 " in no executable mapping",
			 w->pcs[w->n]);
		r = -1;
		why = unmapped;
		plain = 0;
	}
	char bad_sp[96];
	if (r == 0 && sp_outside_copy(snap) && !ends_at_root(s, w)) {
		snprintf(bad_sp, sizeof bad_sp, "stack pointer 0x%llx in no readable memory",
			 (unsigned long long)REG(snap->regs, SP));
		r = -1;
		why = bad_sp;
	}
	if (r == 0 && !ends_at_root(s, w)) {
		r = -1;
		why = partial(snap) ? "the rest depends on registers unknown"
				    : "no return address past here, and no CFI saying the stack ends";
	}
	if (r != 0 && partial(snap) && walk_guessing_rbp(s, snap, &w[0], &w[1]) == 0) {
		w[0] = w[1];
		r = 0;
	}
	if (walk_frameless_leaf(s, snap, &w[0], &w[1]) == 0) {
		w[0] = w[1];
		r = 0;
		plain = 0;
	}
	char cut[128];
	if (ran_out_of_copy(s, snap, w, r)) {
		snprintf(cut, sizeof cut, "the stack copy (%zu bytes) ended before the stack did",
			 snap->stack_len);
		r = -1;
		why = cut;
		out->cut_short = 1;
	}
	out->complete = r == 0;
	if (!out->complete) {
		uint64_t last = w->n ? w->pcs[w->n - 1] : REG(snap->regs, PC);
		if (w->n == MAX_DEPTH)
			snprintf(out->stop_reason, sizeof out->stop_reason,
				 "more than %d frames", MAX_DEPTH);
		else
			snprintf(out->stop_reason, sizeof out->stop_reason, "%s after 0x%" PRIx64 "%s",
				 why ? why : "unknown error", last,
				 partial(snap) && !(snap->regs->known & REGBIT(BP))
					 ? " (read without stopping the thread: only sp and pc known; --stop-all reads the rest)" : "");
	}
	if (t)
		trace_plain(s, snap, w, out, plain, t);
	return push_resolved(s, out, w);
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
	free(s->walks);
	free(s->exec);
	if (s->dwfl)
		dwfl_end(s->dwfl);
	sym_strings_free(&s->strings);
	free(s->debuginfo_path);
	free(s);
}
