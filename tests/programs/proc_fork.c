/* A process that forks; parent and child each fire procfork:hit with their
 * own values.
 *
 * Usage: proc_fork PIDFILE START NPARENT NCHILD
 *   START: "stdin" (wait for one line on stdin before forking) or ms to sleep.
 * Prints "pid P" at start.  After the fork the parent writes
 * "parent P\nchild C\n" to PIDFILE, then:
 *   child:  procfork:hit(role=2, i, 200 + i) for i in 0..NCHILD-1, exit 0
 *   parent: procfork:hit(role=1, i, 100 + i) for i in 0..NPARENT-1,
 *           waits for the child, then procfork:reaped(C, child's exit status).
 * Hits are 10 ms apart, so parent's and child's interleave. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s PIDFILE START NPARENT NCHILD\n", argv[0]);
		return 2;
	}
	int nparent = atoi(argv[3]), nchild = atoi(argv[4]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("pid %d\n", getpid());
	if (strcmp(argv[2], "stdin") == 0) {
		char line[64];
		if (!fgets(line, sizeof line, stdin))
			line[0] = 0;
	} else {
		sleep_ms(atol(argv[2]));
	}

	pid_t child = fork();
	if (child < 0) {
		perror("fork");
		return 2;
	}
	if (child == 0) {
		for (int i = 0; i < nchild; i++) {
			int role = 2;
			long value = 200 + i;
			DTRACE_PROBE3(procfork, hit, role, i, value);
			sleep_ms(10);
		}
		_exit(0);
	}
	FILE *f = fopen(argv[1], "w");
	if (!f) {
		perror(argv[1]);
		return 2;
	}
	fprintf(f, "parent %d\nchild %d\n", getpid(), child);
	fclose(f);
	for (int i = 0; i < nparent; i++) {
		int role = 1;
		long value = 100 + i;
		DTRACE_PROBE3(procfork, hit, role, i, value);
		sleep_ms(10);
	}
	int status = 0;
	waitpid(child, &status, 0);
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	DTRACE_PROBE2(procfork, reaped, (int)child, code);
	return 0;
}
