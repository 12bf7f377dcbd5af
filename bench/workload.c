/*
 * Benchmark workload: fires the USDT probe bench:fire, with three integer
 * arguments, N times in a tight loop and prints the cost per fire.
 *
 *   workload N [OUTFILE [wait]]
 *   -> ns_per_fire=123.4 n=2000000 total_ns=246800000
 *
 * With "wait" it prints "ready" and fires only once it gets SIGUSR1: a
 * tracer can attach to the running process (-p, a container) first.
 *
 * The line goes to stdout, or to OUTFILE when one is given (a tracer that
 * starts the command itself may not hand its stdout back).
 *
 * Built by bench/stream.py with `gcc -O2`.  -DBENCH_NOP5 makes the probe site
 * a 5-byte nop (nopl 0(%rax,%rax,1)) instead of sys/sdt.h's 1-byte nop, which
 * lets kernels with optimized uprobes (x86-64, Linux 6.16+) replace the trap
 * with a call.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/sdt.h>

#ifdef BENCH_NOP5
/* sys/sdt.h expands _SDT_NOP where a probe is used, so redefining it here
 * changes the instruction at every probe site below. */
#undef _SDT_NOP
#define _SDT_NOP .byte 0x0f; .byte 0x1f; .byte 0x44; .byte 0x00; .byte 0x00
#endif

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 2000000;
	if (n <= 0) {
		fprintf(stderr, "usage: %s N (N > 0)\n", argv[0]);
		return 2;
	}
	if (argc > 3 && !strcmp(argv[3], "wait")) {
		sigset_t usr1;
		int sig;
		sigemptyset(&usr1);
		sigaddset(&usr1, SIGUSR1);
		sigprocmask(SIG_BLOCK, &usr1, NULL);
		printf("ready\n");
		fflush(stdout);
		sigwait(&usr1, &sig);
	}
	long long t0 = now_ns();
	for (long i = 0; i < n; i++) {
		DTRACE_PROBE3(bench, fire, i, i * 3, (int)(i & 0xffff));
	}
	long long t1 = now_ns();
	long long total = t1 - t0;
	FILE *out = stdout;
	if (argc > 2 && !(out = fopen(argv[2], "w"))) {
		perror(argv[2]);
		return 1;
	}
	fprintf(out, "ns_per_fire=%.2f n=%ld total_ns=%lld\n", (double)total / (double)n, n, total);
	return fclose(out) ? 1 : 0;
}
