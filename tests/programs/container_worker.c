/* A probe-carrying worker for the container tests.
 *
 * Usage: container_worker N
 *   prints "ready PID" (PID as its own pid namespace sees it), then waits;
 *   each SIGUSR1 fires N hits of
 *     ctr:tick(k, getpid(), 1000 + k)   k = 0 .. N-1 within the burst
 *   and prints "fired TOTAL".  getpid() is the pid inside the container,
 *   so a test can check the ns pid pyusdt reports against the one the
 *   process itself saw.  SIGTERM ends it. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>
#include <unistd.h>

static volatile sig_atomic_t pending;

static void on_usr1(int sig)
{
	(void)sig;
	pending++;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1;
	long total = 0;
	struct sigaction sa = {.sa_handler = on_usr1};
	sigaction(SIGUSR1, &sa, NULL);
	/* Blocked except inside sigsuspend: a signal between the check and
	 * the wait is not lost. */
	sigset_t usr1, waiting;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &waiting);
	sigdelset(&waiting, SIGUSR1);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	for (;;) {
		while (!pending)
			sigsuspend(&waiting);
		pending--;
		for (long k = 0; k < n; k++) {
			int64_t pid = getpid();
			DTRACE_PROBE3(ctr, tick, k, pid, 1000 + k);
		}
		total += n;
		printf("fired %ld\n", total);
		fflush(stdout);
	}
}
