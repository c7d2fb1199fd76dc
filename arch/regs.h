/* regs.h — registers as they cross from an engine (attach/) to the
 * unwinder (symbolize/): an array indexed by DWARF register number, with a
 * mask of the registers that are known.
 *
 * DWARF numbering is the psABI's, not any one kernel interface's: ptrace
 * (struct user_regs_struct) and perf_event (PERF_REG_X86_*) each order the
 * registers their own way, and each engine translates once, where it reads
 * them.  Everything downstream names registers with REGNAME(SP), never by
 * number (the style of ddprof).  x86_64 only, for now.
 */
#ifndef PPROFC_ARCH_REGS_H
#define PPROFC_ARCH_REGS_H

#include <stdint.h>

/* x86_64 psABI DWARF register numbers; RA is the return-address column,
 * which holds the pc of the frame being unwound. */
enum arch_reg {
	ARCH_REG_AX = 0, ARCH_REG_DX = 1, ARCH_REG_CX = 2, ARCH_REG_BX = 3,
	ARCH_REG_SI = 4, ARCH_REG_DI = 5, ARCH_REG_BP = 6, ARCH_REG_SP = 7,
	ARCH_REG_R8 = 8, ARCH_REG_R9 = 9, ARCH_REG_R10 = 10, ARCH_REG_R11 = 11,
	ARCH_REG_R12 = 12, ARCH_REG_R13 = 13, ARCH_REG_R14 = 14, ARCH_REG_R15 = 15,
	ARCH_REG_PC = 16,
	ARCH_NREGS = 17,
};

#define REGNAME(r) ARCH_REG_##r
#define REGBIT(r) (1ull << REGNAME(r))
/* Every register of a stopped thread or a perf sample; blocked threads
 * read without stopping them know only SP and PC. */
#define ARCH_REGS_ALL ((1ull << ARCH_NREGS) - 1)

struct arch_regs {
	uint64_t v[ARCH_NREGS];
	uint64_t known;             /* REGBIT()s of the valid entries */
};

#define REG(regs, r) ((regs)->v[REGNAME(r)])

#endif
