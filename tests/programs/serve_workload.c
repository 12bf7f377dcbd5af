/* The workload `pyusdt serve` is tested on: it fires its probes only when
 * told to on stdin, so a test knows exactly what the exporter must count.
 *
 * Probes:
 *   serve:request(char *method, int status, long bytes)
 *   serve:start(long id), serve:done(long id)   (a timed request)
 *
 * Request number s (0, 1, 2, ... over the whole run) fires
 *   serve:request(kMethods[s % 3], kStatus[s % 4], kBytes[s % 8])
 * (tests/test_serve.py mirrors these tables).  The third method holds a
 * double quote, a backslash and a newline: label values must escape them.
 *
 * Usage: serve_workload; prints "pid PID", then reads commands:
 *   r N   fires N requests, prints "requests TOTAL"
 *   l N   fires N timed requests (start, 2 ms sleep, done), prints "timed TOTAL"
 *   q     exits 0 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>
#include <time.h>
#include <unistd.h>

static const char *const kMethods[] = {"GET", "POST", "odd \"name\"\\ with\nnewline"};
static const int kStatus[] = {200, 200, 404, 503};
static const long kBytes[] = {0, 1, 5, 100, 1000, 4096, 65535, 1000000};

static long requests, timed;

__attribute__((noinline)) static void fire_requests(long n)
{
	for (long k = 0; k < n; k++, requests++) {
		const char *method = kMethods[requests % 3];
		int status = kStatus[requests % 4];
		long bytes = kBytes[requests % 8];
		DTRACE_PROBE3(serve, request, method, status, bytes);
	}
	printf("requests %ld\n", requests);
	fflush(stdout);
}

__attribute__((noinline)) static void fire_timed(long n)
{
	struct timespec pause = {0, 2 * 1000 * 1000};
	for (long k = 0; k < n; k++, timed++) {
		DTRACE_PROBE1(serve, start, timed);
		nanosleep(&pause, NULL);
		DTRACE_PROBE1(serve, done, timed);
	}
	printf("timed %ld\n", timed);
	fflush(stdout);
}

int main(void)
{
	char line[64];
	printf("pid %d\n", (int)getpid());
	fflush(stdout);
	while (fgets(line, sizeof line, stdin)) {
		char cmd = line[0];
		long n = line[1] ? atol(line + 1) : 0;
		if (cmd == 'r')
			fire_requests(n);
		else if (cmd == 'l')
			fire_timed(n);
		else if (cmd == 'q')
			return 0;
	}
	return 0;
}
