/* User stacks (tests/test_expressions.py): stk:leaf fires in inner(), reached
 * as main -> outer -> middle -> inner (ROUNDS times) and main -> other ->
 * inner (2 x ROUNDS times).  Built with frame pointers, as user stacks are
 * walked by them (bpftrace's too).
 * With a second argument "wait", it says "ready" and waits for a line on
 * stdin before its rounds, then says "done" and waits for another before
 * it exits (a tracer names the frames of a process still there).
 * Usage: expr_stacks [ROUNDS [wait]] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>

__attribute__((noinline)) static void inner(long i)
{
	DTRACE_PROBE1(stk, leaf, i);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void middle(long i)
{
	inner(i);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void outer(long i)
{
	middle(i);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void other(long i)
{
	inner(i);
	inner(i + 1);
	__asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 1;
	char line[16];
	if (argc > 2) {
		printf("ready\n");
		fflush(stdout);
		if (!fgets(line, sizeof line, stdin))
			return 1;
	}
	for (long r = 0; r < rounds; r++) {
		outer(r);
		other(r);
	}
	if (argc > 2) {
		printf("done\n");
		fflush(stdout);
		if (!fgets(line, sizeof line, stdin))
			return 1;
	}
	return 0;
}
