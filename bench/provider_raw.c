/*
 * The C reference for bench/provider.py: the same uprobe hit as a Python
 * provider's probe.fire(1, 2, 3), from a C loop.
 *
 *   provider_raw            -> prints "ready PID", then for each line N on
 *                              stdin fires benchraw:fire(1, 2, 3) N times and
 *                              prints "ns_per_fire=... n=N total_ns=..."
 *
 * The three arguments are 64-bit values in registers (an empty asm makes the
 * compiler keep them there and reload nothing), as a provider probe's are.
 * The process stays up between rounds so a tracer can attach to its pid and
 * detach again, as it does to the Python benchmark process.
 *
 * Built by bench/provider.py with `gcc -O2`: as is, the probe site is
 * sys/sdt.h's 1-byte nop; with -DBENCH_NOP5 it is the 5-byte
 * `nopl 0(%rax,%rax,1)` a provider built with nop5=True uses (the same
 * redefinition of _SDT_NOP as bench/workload.c: sys/sdt.h still writes the
 * note, whose address is the first byte of the nop).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
/* A semaphore, as a provider probe has: the tracer attaches the same way
 * (uprobe with a reference counter).  The loop does not test it: what is
 * measured is the hit. */
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

__extension__ unsigned short benchraw_fire_semaphore __attribute__((unused, section(".probes")));

#ifdef BENCH_NOP5
#undef _SDT_NOP
#define _SDT_NOP .byte 0x0f; .byte 0x1f; .byte 0x44; .byte 0x00; .byte 0x00
#endif

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(void)
{
	char line[64];
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	while (fgets(line, sizeof line, stdin)) {
		long n = strtol(line, NULL, 10);
		if (n <= 0)
			break;
		long a = 1, b = 2, c = 3;
		long long t0 = now_ns();
		for (long i = 0; i < n; i++) {
			__asm__ volatile("" : "+r"(a), "+r"(b), "+r"(c));
			DTRACE_PROBE3(benchraw, fire, a, b, c);
		}
		long long total = now_ns() - t0;
		printf("ns_per_fire=%.2f n=%ld total_ns=%lld\n", (double)total / (double)n, n, total);
		fflush(stdout);
	}
	return 0;
}
