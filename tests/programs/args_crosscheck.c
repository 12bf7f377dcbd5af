/* For comparing pyusdt with bpftrace: xcheck:point(i, int square-50,
 * long -i*1000003) fired ROUNDS times, arg1 from a volatile local (memory
 * operand).  Usage: args_crosscheck [ROUNDS] */
#include <stdlib.h>
#include <sys/sdt.h>

__attribute__((noinline)) static void point(long i)
{
	volatile int sq = (int)(i * i) - 50;
	long big = -i * 1000003L;
	DTRACE_PROBE3(xcheck, point, i, sq, big);
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 1;
	for (long i = 0; i < rounds; i++)
		point(i);
	return 0;
}
