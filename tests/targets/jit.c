/* jit.c — threads whose stacks pass through JIT code: x86-64 machine code
 * written into an anonymous page (mmap PROT_READ|PROT_WRITE, then
 * mprotect PROT_READ|PROT_EXEC), with no file, no symbol and no CFI behind
 * it, as a JIT compiler leaves it (test_jit.py).
 *
 * Thread "jit-fp":   fp_main -> [JIT, frame pointer] -> blocked_fp -> nanosleep
 * Thread "jit-nofp": nofp_main -> [JIT, no frame pointer] -> blocked_nofp
 *                    -> nanosleep
 * Thread "jit-chain": chain_main -> [JIT A, frame pointer] -> [JIT B: the
 *                    code of jit-fp] -> blocked_chain -> nanosleep: a JIT
 *                    frame whose caller is JIT code too.
 * Thread "jit-sys":  sys_main -> [JIT, frame pointer, in its own nanosleep
 *                    system call]: the innermost frame is JIT code.
 * With the argument "fresh", thread "jit-fresh": fresh_main -> run_jit ->
 * [JIT, frame pointer] -> spin_c, in a new page every 20 calls (~20 ms),
 * as a JIT compiles code all the time: a profiler's view of the maps is
 * never up to date.  Pages are kept (at most 4096), as code a JIT made
 * stays for a while: a sample may be unwound long after it was taken.
 * With the argument "spin", thread "jit-spin": spin_main -> [JIT, frame
 * pointer, looping in its own code] -> spin_c, which also spins: CPU
 * samples fall in the JIT code itself and in a C function it called.
 *
 * The JIT code with a frame pointer is "push rbp; mov rbp,rsp; call *rdi;
 * pop rbp; ret": an unwinder without CFI follows rbp through it.  The one
 * without is "sub rsp,8; call *rdi; add rsp,8; ret": nothing describes
 * where its caller's return address is.
 *
 * Prints "jit START END" (the page's range, hex) and "ready" once every
 * thread is about to enter its sleep (a test waits for the system calls
 * in /proc), then runs until killed.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef void (*callee_fn)(void);
typedef void (*jit_fn)(callee_fn);

static const unsigned char code_fp[] = {
	0x55,                           /* push %rbp */
	0x48, 0x89, 0xe5,               /* mov %rsp,%rbp */
	0xff, 0xd7,                     /* call *%rdi */
	0x5d,                           /* pop %rbp */
	0xc3,                           /* ret */
};

static const unsigned char code_nofp[] = {
	0x48, 0x83, 0xec, 0x08,         /* sub $8,%rsp (keeps the call aligned) */
	0xff, 0xd7,                     /* call *%rdi */
	0x48, 0x83, 0xc4, 0x08,         /* add $8,%rsp */
	0xc3,                           /* ret */
};

/* Calls the code at an address written over its 8 zero bytes, passing
 * its own rdi on. */
static const unsigned char code_chain[] = {
	0x55,                           /* push %rbp */
	0x48, 0x89, 0xe5,               /* mov %rsp,%rbp */
	0x48, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0,     /* movabs $B,%rax */
	0xff, 0xd0,                     /* call *%rax */
	0x5d,                           /* pop %rbp */
	0xc3,                           /* ret */
};

/* Makes the system call itself, nanosleep(rdi, NULL), for ever. */
static const unsigned char code_sys[] = {
	0x55,                           /* push %rbp */
	0x48, 0x89, 0xe5,               /* mov %rsp,%rbp */
	0xb8, 0x23, 0x00, 0x00, 0x00,   /* loop: mov $35,%eax (nanosleep) */
	0x31, 0xf6,                     /* xor %esi,%esi */
	0x0f, 0x05,                     /* syscall */
	0xeb, 0xf5,                     /* jmp loop */
};

/* Spins 2^20 times in its own code between calls of *rdi, for ever. */
static const unsigned char code_spin[] = {
	0x55,                           /* push %rbp */
	0x48, 0x89, 0xe5,               /* mov %rsp,%rbp */
	0x53,                           /* push %rbx */
	0x48, 0x83, 0xec, 0x08,         /* sub $8,%rsp */
	0x48, 0x89, 0xfb,               /* mov %rdi,%rbx */
	0xb9, 0x00, 0x00, 0x10, 0x00,   /* loop: mov $0x100000,%ecx */
	0xff, 0xc9,                     /* inner: dec %ecx */
	0x75, 0xfc,                     /* jnz inner */
	0xff, 0xd3,                     /* call *%rbx */
	0xeb, 0xf3,                     /* jmp loop */
};

static volatile int ready_count;
static volatile unsigned long sink;

static void nap_forever(void)
{
	__atomic_add_fetch(&ready_count, 1, __ATOMIC_SEQ_CST);
	struct timespec ts = { 1000, 0 };
	for (;;)
		nanosleep(&ts, NULL);
}

/* What the JIT code calls, one a thread (named in the stacks). */
#define BLOCKED(name)                                                   \
	__attribute__((noinline)) static void name(void)                \
	{                                                               \
		nap_forever();                                          \
		sink++;                                                 \
	}

BLOCKED(blocked_fp)
BLOCKED(blocked_chain)
BLOCKED(blocked_nofp)

__attribute__((noinline)) static void spin_c(void)
{
	for (unsigned long i = 0; i < (1ul << 20); i++)
		sink += i;
}

struct job {
	jit_fn code;
	callee_fn callee;
};

/* The call into the JIT code is no tail call: the thread's function
 * stays on the stack below it. */
__attribute__((noinline)) static void *run_jit(void *arg)
{
	struct job *j = arg;
	j->code(j->callee);
	sink++;
	return NULL;
}

/* One function a thread, each its own name in the stacks (-fno-ipa-icf
 * keeps them apart): calls run_jit, no tail call. */
#define THREAD_MAIN(name, first)                                        \
	__attribute__((noinline)) static void *name(void *arg)          \
	{                                                               \
		first;                                                  \
		void *r = run_jit(arg);                                 \
		sink++;                                                 \
		return r;                                               \
	}

THREAD_MAIN(fp_main, (void)0)
THREAD_MAIN(nofp_main, (void)0)
THREAD_MAIN(chain_main, (void)0)
THREAD_MAIN(spin_main, (void)0)
/* Its JIT code makes the system call: it counts itself ready here. */
THREAD_MAIN(sys_main, __atomic_add_fetch(&ready_count, 1, __ATOMIC_SEQ_CST))

/* A new page holding code_fp: like a JIT's fresh code. */
static jit_fn new_code(void)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned char *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	memcpy(p, code_fp, sizeof code_fp);
	if (mprotect(p, (size_t)page, PROT_READ | PROT_EXEC) != 0) {
		perror("mprotect");
		exit(1);
	}
	return (jit_fn)(void *)p;
}

__attribute__((noinline)) static void *fresh_main(void *arg)
{
	(void)arg;
	struct job j = { new_code(), spin_c };
	for (unsigned pages = 1;; pages++) {
		for (int i = 0; i < 20; i++)
			run_jit(&j);
		if (pages < 4096)
			j.code = new_code();
	}
	return NULL;
}

static void start(void *(*fn)(void *), struct job *j, const char *name)
{
	pthread_t t;
	if (pthread_create(&t, NULL, fn, j) != 0) {
		perror("pthread_create");
		exit(1);
	}
	pthread_setname_np(t, name);
}

int main(int argc, char **argv)
{
	int spin = 0, fresh = 0;
	for (int i = 1; i < argc; i++) {
		spin |= strcmp(argv[i], "spin") == 0;
		fresh |= strcmp(argv[i], "fresh") == 0;
	}
	long page = sysconf(_SC_PAGESIZE);
	unsigned char *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	/* Each routine at its own 64-byte boundary, as JITs align code. */
	memcpy(p, code_fp, sizeof code_fp);
	memcpy(p + 64, code_nofp, sizeof code_nofp);
	memcpy(p + 128, code_spin, sizeof code_spin);
	memcpy(p + 192, code_sys, sizeof code_sys);
	memcpy(p + 256, code_chain, sizeof code_chain);
	uint64_t b = (uint64_t)(uintptr_t)p;    /* B: code_fp at the page's start */
	memcpy(p + 256 + 6, &b, sizeof b);
	if (mprotect(p, (size_t)page, PROT_READ | PROT_EXEC) != 0) {
		perror("mprotect");
		return 1;
	}
	static struct job fp, nofp, spinning, sys, chain;
	static struct timespec nap = { 1000, 0 };
	fp = (struct job){ (jit_fn)(void *)p, blocked_fp };
	nofp = (struct job){ (jit_fn)(void *)(p + 64), blocked_nofp };
	spinning = (struct job){ (jit_fn)(void *)(p + 128), spin_c };
	chain = (struct job){ (jit_fn)(void *)(p + 256), blocked_chain };
	sys = (struct job){ (jit_fn)(void *)(p + 192), (callee_fn)(void *)&nap };
	start(fp_main, &fp, "jit-fp");
	start(nofp_main, &nofp, "jit-nofp");
	start(sys_main, &sys, "jit-sys");
	start(chain_main, &chain, "jit-chain");
	if (spin)
		start(spin_main, &spinning, "jit-spin");
	if (fresh)
		start(fresh_main, NULL, "jit-fresh");
	while (ready_count < 4)
		usleep(1000);
	printf("jit %lx %lx\n", (unsigned long)p, (unsigned long)p + (unsigned long)page);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
