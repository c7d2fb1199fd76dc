/* plugin.c — a small shared library that the dlopener fixture loads at
 * run time (tests/integration/test_binaries.py, test_hostile.py): once
 * called, plugin_spin() never returns, spinning in plugin_work(). */
#include <stdint.h>

#define EXPORTED __attribute__((noinline, visibility("default")))

volatile uint64_t plugin_sink;

EXPORTED uint64_t plugin_work(uint64_t x)
{
	for (int i = 0; i < 1000000; i++) {
		x = x * 2862933555777941757ULL + 3037000493ULL;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}

EXPORTED void plugin_spin(void)
{
	uint64_t x = 5;
	for (;;) {
		x = plugin_work(x) + 1;
		plugin_sink = x;
	}
}
