/* proc.h — reading and parsing the /proc files pprofc needs.
 *
 * Every parser takes a buffer and its length, so the unit tests (and the
 * fuzzers) can feed it hostile input: a comm holding ')' and newlines, a
 * truncated line, an empty file.  The readers open /proc and hand the bytes
 * to the parsers.  Nothing here uses ptrace; nothing here stops a thread.
 */
#ifndef PPROFC_ATTACH_PROC_H
#define PPROFC_ATTACH_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The kernel's PF_KTHREAD bit in the flags field of /proc/PID/stat. */
#define ATTACH_PF_KTHREAD 0x00200000u

/* /proc/PID/task/TID/stat, the fields pprofc uses. */
struct attach_stat {
	char comm[64];          /* raw bytes, NUL-terminated; may hold anything */
	char state;             /* R S D T t Z X I ... */
	pid_t ppid;
	unsigned int flags;
	unsigned long long utime, stime;   /* clock ticks */
	int processor;          /* CPU it last ran on, -1 if not given */
	int exit_code;          /* a zombie's wait status, -1 if not given */
};
int attach_parse_stat(const char *buf, size_t len, struct attach_stat *out);

/* /proc/PID/status, the fields pprofc uses. */
struct attach_status {
	pid_t tgid;
	pid_t tracer_pid;
	uid_t uid;              /* real uid */
};
int attach_parse_status(const char *buf, size_t len, struct attach_status *out);

/* /proc/PID/task/TID/syscall: "running", "-1 sp pc", or "nr a0..a5 sp pc". */
enum attach_sc_kind { ATTACH_SC_UNKNOWN, ATTACH_SC_RUNNING, ATTACH_SC_NONE, ATTACH_SC_IN };
struct attach_syscall {
	enum attach_sc_kind kind;
	long nr;
	uint64_t args[6];
	uint64_t sp, pc;
};
int attach_parse_syscall(const char *buf, size_t len, struct attach_syscall *out);

/* /proc/PID/task/TID/sched: se.exec_start in milliseconds of the scheduler
 * clock, and nr_switches.  Returns 0 when exec_start was found. */
struct attach_sched {
	double exec_start_ms;
	unsigned long long nr_switches;
};
int attach_parse_sched(const char *buf, size_t len, struct attach_sched *out);

/* /proc/PID/maps. */
struct attach_map {
	uint64_t start, end, offset;
	uint64_t inode;
	char perms[5];
	char *path;             /* "" for anonymous mappings; owned by the map */
};
struct attach_maps {
	struct attach_map *v;
	size_t n, cap;
};
int attach_parse_maps(const char *buf, size_t len, struct attach_maps *out);
const struct attach_map *attach_maps_find(const struct attach_maps *m, uint64_t addr);
void attach_maps_free(struct attach_maps *m);

/* A socket found by inode in /proc/PID/net/{tcp,tcp6,udp,udp6,unix}.  The
 * parsers read one table; "proto" is what the caller says the table is. */
int attach_net_find_inet(const char *buf, size_t len, uint64_t inode, int ipv6,
			 char *local, size_t local_len, char *remote, size_t remote_len,
			 int *state);
int attach_net_find_unix(const char *buf, size_t len, uint64_t inode,
			 char *path, size_t path_len);
const char *attach_tcp_state_name(int state);

/* The scheduler clock of each CPU now (ms), as /proc/PID/task/TID/sched's
 * se.exec_start counts it: each CPU keeps its own, and they drift apart
 * (steal and IRQ time are left out per CPU).  pprofc visits each CPU and
 * reads its own exec_start there (the calling thread's; its affinity is
 * restored before returning).  Returns a malloc'ed array indexed by CPU
 * number, sized for every CPU the kernel can have, and in *n how many
 * entries count; a CPU that could not be visited gets -1.  NULL (*n 0) if
 * it cannot tell. */
double *attach_sched_clocks(size_t *n);
/* The calling thread's own exec_start (ms): the clock of the CPU it runs
 * on, as it was when it last started running (a moment ago when it just
 * woke up); and in *cpu (if not NULL) that CPU, -1 if it moved meanwhile.
 * -1 if unreadable. */
double attach_sched_clock_here(int *cpu);
/* How many threads process pid has now (its status' Threads:), 0 if
 * unknown: one read, where listing /proc/PID/task costs one entry each. */
size_t attach_count_threads(pid_t pid);
/* Whether tid is a live thread of pid (its /proc/PID/task entry). */
int attach_task_exists(pid_t pid, pid_t tid);
/* /proc/PID/task/TID/status into buf (NUL-terminated, *len bytes); -1
 * when the thread is gone. */
int attach_read_task_status(pid_t pid, pid_t tid, char *buf, size_t size, size_t *len);
/* Whether thread tid of pid has exited or is exiting: gone, or a zombie
 * (State Z or X).  A zombie refuses PTRACE_SEIZE with EPERM, not ESRCH,
 * until it is reaped: such an EPERM means "exited", not "another tracer". */
int attach_task_exiting(pid_t pid, pid_t tid);
/* The id to read process pid's mm-wide /proc files by (maps, mem, exe,
 * root, map_files, auxv, cmdline, fd, net) and to give process_vm_readv:
 * pid itself while its main thread lives; once the main thread has exited
 * (pthread_exit) while others run on, the zombie leader has no memory nor
 * files of its own left, and a live thread's tid stands for the process.
 * Nothing is kept: each call looks again (one read of the leader's status
 * while it lives), so a caller that calls it again when the id it had
 * stops answering (that thread exited: ESRCH, ENOENT, an empty maps) gets
 * another live thread.  pid when no thread is left. */
pid_t attach_mm_pid(pid_t pid);
/* How many CPUs pprofc may run on (its affinity), at least 1: how many
 * worker threads are worth starting. */
size_t attach_usable_cpus(void);
/* How many CPUs the kernel can have: the highest possible CPU number + 1. */
size_t attach_possible_cpus(void);
/* The highest CPU number + 1 in a kernel CPU list ("0-63", "0-3,8-11",
 * "0"), 0 if it names none. */
size_t attach_parse_cpu_list(const char *list);

/* Readers.  attach_read_file reads a whole (small or huge) /proc file into a
 * malloc'ed, NUL-terminated buffer; returns 0 or -errno. */
int attach_read_file(const char *path, char **buf, size_t *len);
int attach_read_small(const char *path, char *buf, size_t size, size_t *len);
/* The same for the file name in directory dirfd (a task's /proc directory,
 * opened once: the path is not walked again for each of its files). */
int attach_read_at(int dirfd, const char *name, char *buf, size_t size, size_t *len);
int attach_list_tasks(pid_t pid, pid_t **tids, size_t *n);
/* The processes descending from any of roots now (children, theirs...),
 * roots left out, parents before their children, by the ppid field of
 * every /proc/PID/stat: /proc/PID/task/TID/children needs
 * CONFIG_PROC_CHILDREN, which kernels often lack.  A process whose parent
 * exited was handed to a reaper (init) and is no longer found.  0 or
 * -errno; *pids is malloc'ed (NULL when n is 0). */
int attach_list_descendants(const pid_t *roots, size_t nroots, pid_t **pids, size_t *n);
/* A thread's time on a CPU (ns), the first field of its schedstat; 0 if
 * unreadable (it exited). */
uint64_t attach_read_schedstat(pid_t pid, pid_t tid);
/* Whether process pid is over: gone, or every thread a zombie.  Then
 * *exit_status is its wait status while its parent has not reaped it, else
 * -1.  cpu_ns (may be NULL) gets its CPU time so far, exited threads
 * included, while it is there to read. */
int attach_process_ended(pid_t pid, int *exit_status, uint64_t *cpu_ns);

#endif
