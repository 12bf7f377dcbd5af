/* One probe, multisite:hit, with two sites: it sits in an always-inline
 * function called from two places.  Site "1" fires ROUNDS times, site "2"
 * fires 2*ROUNDS times; arg0 says which site, arg1 counts.
 * Usage: args_multisite [ROUNDS] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>

static inline __attribute__((always_inline)) void hit(long site, long n)
{
	DTRACE_PROBE2(multisite, hit, site, n);
}

__attribute__((noinline)) static void first(long n) { hit(1, n); }
__attribute__((noinline)) static void second(long n) { hit(2, n); hit(2, n + 1000); }

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 1;
	for (long i = 0; i < rounds; i++) {
		first(i);
		second(i);
	}
	DTRACE_PROBE(multisite, done);
	return 0;
}
