/* A long-running process with a semaphore-guarded probe, for the detach and
 * target-lifetime tests.
 *
 * Probes (all have semaphores, as sys/sdt.h requires once
 * _SDT_HAS_SEMAPHORES is set; only procsem:tick is guarded by its own):
 *   procsem:plain(iter)           every loop iteration (10 ms), unguarded
 *   procsem:tick(iter)            every iteration while procsem_tick_semaphore != 0
 *   procsem:burst(k, 10*k + 3)    k = 0..N-1 on command, unguarded
 *
 * Usage:
 *   proc_sem serve       prints "pid P", then reads commands on stdin:
 *                        "s"   -> "status sem=S iter=I ticks=T"
 *                        "f N" -> fires N bursts, answers "burst N"
 *                        "q" or EOF -> exit 0
 *   proc_sem run N       fires N bursts and exits 0
 *   proc_sem spawn FILE N
 *                        forks a child that loops like serve but detached
 *                        from stdio (stdin/stdout/stderr = /dev/null); the
 *                        parent writes "child C" to FILE, fires N bursts,
 *                        sleeps 1 s (the child is up by then) and exits 0.  The child appends
 *                        "status sem=S iter=I ticks=T" to FILE on SIGUSR1 and
 *                        exits 0 on SIGTERM. */
#define _SDT_HAS_SEMAPHORES 1
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>
#include <time.h>
#include <unistd.h>

unsigned short procsem_plain_semaphore __attribute__((section(".probes"))) __attribute__((used));
unsigned short procsem_tick_semaphore __attribute__((section(".probes"))) __attribute__((used));
unsigned short procsem_burst_semaphore __attribute__((section(".probes"))) __attribute__((used));

static long iter, ticks;
static volatile sig_atomic_t want_status, want_exit;

static void step(void)
{
	iter++;
	DTRACE_PROBE1(procsem, plain, iter);
	if (__builtin_expect(procsem_tick_semaphore, 0)) {
		ticks++;
		DTRACE_PROBE1(procsem, tick, iter);
	}
}

static void burst(int n)
{
	for (int k = 0; k < n; k++) {
		long value = 10L * k + 3;
		DTRACE_PROBE2(procsem, burst, k, value);
	}
}

static void on_usr1(int sig) { (void)sig; want_status = 1; }
static void on_term(int sig) { (void)sig; want_exit = 1; }

static int serve(void)
{
	char line[64];
	printf("pid %d\n", getpid());
	for (;;) {
		struct pollfd p = {0, POLLIN, 0};
		step();
		if (poll(&p, 1, 10) <= 0)
			continue;
		if (!fgets(line, sizeof line, stdin) || line[0] == 'q')
			return 0;
		if (line[0] == 's') {
			printf("status sem=%u iter=%ld ticks=%ld\n", (unsigned)procsem_tick_semaphore, iter, ticks);
		} else if (line[0] == 'f') {
			int n = atoi(line + 1);
			burst(n);
			printf("burst %d\n", n);
		}
	}
}

static int spawn(const char *file, int n)
{
	pid_t child = fork();
	if (child < 0) {
		perror("fork");
		return 2;
	}
	if (child == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		close(null);
		signal(SIGUSR1, on_usr1);
		signal(SIGTERM, on_term);
		while (!want_exit) {
			struct timespec ts = {0, 10 * 1000000L};
			step();
			nanosleep(&ts, NULL);
			if (want_status) {
				want_status = 0;
				FILE *f = fopen(file, "a");
				if (f) {
					fprintf(f, "status sem=%u iter=%ld ticks=%ld\n",
						(unsigned)procsem_tick_semaphore, iter, ticks);
					fclose(f);
				}
			}
		}
		_exit(0);
	}
	FILE *f = fopen(file, "w");
	if (!f) {
		perror(file);
		return 2;
	}
	fprintf(f, "child %d\n", child);
	fclose(f);
	burst(n);
	struct timespec ts = {1, 0};
	nanosleep(&ts, NULL);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && strcmp(argv[1], "serve") == 0)
		return serve();
	if (argc == 3 && strcmp(argv[1], "run") == 0) {
		burst(atoi(argv[2]));
		return 0;
	}
	if (argc == 4 && strcmp(argv[1], "spawn") == 0)
		return spawn(argv[2], atoi(argv[3]));
	fprintf(stderr, "usage: %s serve | run N | spawn FILE N\n", argv[0]);
	return 2;
}
