/* One probe name, sites:mixed, at three call sites with different
 * arguments, as a probe macro used in several places gets them:
 *   site A: 1 argument   (int8)
 *   site B: 3 arguments  (uint16, int32, uint64)
 *   site C: 5 arguments  (int64, uint8, int16, uint32, char *)
 * Built with a semaphore (every site shares it), and ROUNDS rounds of
 * A, B, C, then sites:done(ROUNDS).  It waits for a line on stdin before
 * firing when given "wait", so a tracer can attach first.
 * Usage: args_site_specs [ROUNDS] [wait] */
#define _SDT_HAS_SEMAPHORES 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>

unsigned short sites_mixed_semaphore __attribute__((section(".probes"))) __attribute__((used));
unsigned short sites_done_semaphore __attribute__((section(".probes"))) __attribute__((used));

/* Values the tests assert, kept out of the optimiser's reach. */
volatile signed char a0 = -5;
volatile unsigned short b0 = 65535;
volatile int b1 = -7;
volatile unsigned long b2 = 18446744073709551615UL;
volatile long c0 = -9000000000L;
volatile unsigned char c1 = 200;
volatile short c2 = -300;
volatile unsigned int c3 = 4000000000U;
static const char c4[] = "fifth";

/* Parameters, so the notes name registers (as most real probes do) and
 * bpftrace reads the same values. */
__attribute__((noinline)) static void site_a(signed char x) { STAP_PROBE1(sites, mixed, x); }
__attribute__((noinline)) static void site_b(unsigned short x, int y, unsigned long z)
{
	STAP_PROBE3(sites, mixed, x, y, z);
}
__attribute__((noinline)) static void site_c(long v, unsigned char w, short x, unsigned int y,
					     const char *z)
{
	STAP_PROBE5(sites, mixed, v, w, x, y, z);
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 1;
	char line[16];
	if (argc > 2 && strcmp(argv[2], "wait") == 0) {
		setvbuf(stdout, NULL, _IOLBF, 0);
		printf("ready\n");
		if (!fgets(line, sizeof line, stdin))
			return 1;
	}
	/* Touch the string's page: cold strings are test_cold_string's subject. */
	(void)*(volatile const char *)c4;
	for (long i = 0; i < rounds; i++) {
		site_a(a0);
		site_b(b0, b1, b2);
		site_c(c0, c1, c2, c3, c4);
	}
	STAP_PROBE1(sites, done, rounds);
	return 0;
}
