/* A parent that leaves the work to a child, as servers do: only the child
 * fires fork_worker:work.
 *
 * Usage: fork_worker N
 *   prints "parent P" and "child C", then on each line on stdin the child
 *   fires fork_worker:work(i) N times and prints "worked N"; EOF ends both. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s N\n", argv[0]);
		return 2;
	}
	long n = atol(argv[1]);
	printf("parent %d\n", (int)getpid());
	fflush(stdout);
	pid_t child = fork();
	if (child < 0)
		return 3;
	if (child == 0) {
		printf("child %d\n", (int)getpid());
		fflush(stdout);
		char line[16];
		while (fgets(line, sizeof line, stdin)) {
			for (long i = 0; i < n; i++)
				DTRACE_PROBE1(fork_worker, work, i);
			printf("worked %ld\n", n);
			fflush(stdout);
		}
		return 0;
	}
	int status;
	waitpid(child, &status, 0);
	return 0;
}
