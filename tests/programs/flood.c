/* A numbered flood of events for the tests of stopping and losses:
 * flood:tick(seq) with seq 0, 1, 2, ... across the whole run.
 *
 * Usage: flood [forever]
 *   prints its pid; then with "forever" fires as fast as it can until
 *   killed, otherwise fires K events for every line "K" on stdin and
 *   answers "fired TOTAL", until EOF. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>
#include <unistd.h>

static unsigned long next_seq;

__attribute__((noinline)) static void fire(unsigned long n)
{
	for (unsigned long k = 0; k < n; k++, next_seq++)
		DTRACE_PROBE1(flood, tick, next_seq);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("%d\n", (int)getpid());
	if (argc > 1 && !strcmp(argv[1], "forever")) {
		for (;;)
			fire(1 << 20);
	}
	char line[32];
	while (fgets(line, sizeof line, stdin)) {
		fire(strtoul(line, NULL, 10));
		printf("fired %lu\n", next_seq);
	}
	return 0;
}
