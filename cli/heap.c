/* heap.c — what `pprofc run --profile heap|allocs` adds to run: a
 * snapshot on SIGUSR1 or every --interval (each saved under its own
 * number, as go tool pprof saves profiles, or replacing -o FILE), and the
 * summary line.  The reading of the ring is collect/heap.c's. */
#include <inttypes.h>
#include <string.h>
#include <sys/wait.h>

#include "cli.h"

volatile sig_atomic_t cli_snapshot;

static void on_snapshot_signal(int sig)
{
	(void)sig;
	cli_snapshot = 1;
}

void cli_heap_catch_snapshot(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_snapshot_signal;
	sa.sa_flags = SA_RESTART;       /* a write in progress goes on */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
}

void cli_heap_snapshot(void *arg, struct collect_session *s)
{
	const struct cli_progress *p = arg;
	const struct cli_profile_options *o = p->o;
	struct cli_saved w;
	if (cli_saved_open(&w, o->output, o->format == FMT_PROTO, o->command[0], collect_file_kind(o->kind)))
		return;         /* said why; the collection goes on */
	struct pp_profile *prof = collect_profile(s);
	cli_profile_write(o, prof, (int64_t)collect_summary(s)->st.duration_ns, &w);
}

/* The lines both heap summaries end with. */
static void heap_summary_tail(const struct collect_summary *sum)
{
	if (sum->cut_short)
		fprintf(stderr, "pprofc: %" PRIu64 " stacks were deeper than the stack copied per sample: "
			"they end with a [stack cut short] frame (raise --stack-size)\n", sum->cut_short);
	if (sum->dropped_nomem)
		fprintf(stderr, "pprofc: %" PRIu64 " samples dropped (out of memory)\n", sum->dropped_nomem);
}

/* --children: how many processes were followed, and what became of them. */
static void followed_line(const struct collect_heap_summary *h)
{
	uint64_t running = h->processes - (h->processes_exited < h->processes ? h->processes_exited
									       : h->processes);
	fprintf(stderr, "pprofc: %" PRIu64 " process%s followed (the command included, label pid): %"
		PRIu64 " exited before the end, %" PRIu64 " still running (%s)", h->processes,
		h->processes == 1 ? "" : "es", h->processes_exited, running,
		running ? "they run on, not recorded" : "none left");
	if (h->asks_refused)
		fprintf(stderr, "; %" PRIu64 " not followed (asked too late, not ours, or failed)",
			h->asks_refused);
	fputc('\n', stderr);
}

void cli_heap_summary(const struct collect_summary *sum, const char *command, int children,
		      int verbose)
{
	const struct collect_heap_summary *h = &sum->heap;
	int st = sum->exit_status;
	if (isatty(2))
		fputs("\r\033[K", stderr);
	fprintf(stderr, "pprofc: %" PRIu64 " allocations sampled (%" PRIu64 " freed since) on %" PRIu64
		" stacks in %.2f s; dropped: %" PRIu64 " (ring full), %" PRIu64 " without a stack, %"
		PRIu64 " frees not tracked; %s ", h->samples, h->frees, h->stacks,
		(double)sum->st.duration_ns / 1e9, h->dropped_full, h->no_stack, h->untracked_frees,
		command);
	if (!sum->target_exited)
		fprintf(stderr, "still running (it runs on, not recorded)\n");
	else if (st >= 0 && WIFEXITED(st))
		fprintf(stderr, "exited with status %d\n", WEXITSTATUS(st));
	else if (st >= 0 && WIFSIGNALED(st))
		fprintf(stderr, "was killed by signal %d (%s)\n", WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		fprintf(stderr, "exited\n");
	if (children)
		followed_line(h);
	if (h->no_maps)
		fprintf(stderr, "pprofc: %" PRIu64 " allocations read after their process had gone "
			"have no stack (it ended without exit(): killed, or a raw exit_group)\n",
			h->no_maps);
	if (h->unmatched_frees)
		fprintf(stderr, "pprofc: %" PRIu64 " frees of sampled blocks whose allocation was not "
			"read (dropped)\n", h->unmatched_frees);
	if (h->bad_records)
		fprintf(stderr, "pprofc: the sampler wrote a malformed record: reading stopped there "
			"(a sampler library of another version?)\n");
	heap_summary_tail(sum);
	if (verbose && h->memo_hits + h->memo_misses)
		fprintf(stderr, "pprofc: unwinding memo: %" PRIu64 " hits, %" PRIu64 " misses (%" PRIu64
			" memoized)\n", h->memo_hits, h->memo_misses, h->memo_inserted);
}

/* What one probe hit costs the target here (a trap into the kernel, the
 * sample's registers and stack copy into the ring buffer; entry and
 * return of a malloc are two): measured with bench/uprobe_hit.py, README
 * "Heap profiles of a running process". */
#define UPROBE_HIT_NS 9000.0

void cli_heap_attach_ready(const struct collect_summary *sum)
{
	fprintf(stderr, "pprofc: %" PRIu64 " probes in place on %s (%s): the window starts\n",
		sum->heap.probes, sum->heap.allocator,
		sum->heap.probes_inherited ? "threads created from now on carry them from birth"
					   : "a thread created from now on gets them once pprofc sees it");
}

void cli_heap_attach_summary(const struct collect_summary *sum)
{
	const struct collect_heap_summary *h = &sum->heap;
	if (isatty(2))
		fputs("\r\033[K", stderr);
	fprintf(stderr, "pprofc: %" PRIu64 " allocations sampled (%" PRIu64 " freed in the window) on %"
		PRIu64 " stacks in %.2f s, from %" PRIu64 " probe hits on %" PRIu64 " functions of %s; "
		"inuse counts only allocations made during the window\n", h->samples, h->frees,
		h->stacks, (double)sum->st.duration_ns / 1e9, h->hits, h->probes, h->allocator);
	if (h->first_second_hits)
		fprintf(stderr, "pprofc: %" PRIu64 " probe hits/s in the first second, at ~%.1f us each: "
			"~%.0f%% of one CPU added to the target while attached\n", h->first_second_hits,
			UPROBE_HIT_NS / 1e3, (double)h->first_second_hits * UPROBE_HIT_NS / 1e7);
	if (h->capped_rate)
		fprintf(stderr, "pprofc: stopped early: %" PRIu64 " probe hits/s is above --max-hit-rate; "
			"the probes were closed and the profile covers %.2f s\n", h->capped_rate,
			(double)sum->st.duration_ns / 1e9);
	if (sum->st.lost_records)
		fprintf(stderr, "pprofc: %" PRIu64 " probe hits dropped by the kernel (its buffer was "
			"full): allocations and frees are missing\n", sum->st.lost_records);
	if (h->unpaired)
		fprintf(stderr, "pprofc: %" PRIu64 " allocator calls without their entry or return "
			"(in flight at the start, or dropped)\n", h->unpaired);
	heap_summary_tail(sum);
}
