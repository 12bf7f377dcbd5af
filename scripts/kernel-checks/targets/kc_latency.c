/* scripts/check-kernels: kc:start(i) and kc:done(i) around a 2 ms sleep,
 * PAIRS times (default 8), on one thread.  Usage: kc_latency [PAIRS] */
#include <stdlib.h>
#include <sys/sdt.h>
#include <time.h>

int main(int argc, char **argv)
{
	long pairs = argc > 1 ? atol(argv[1]) : 8;
	struct timespec pause = {0, 2 * 1000000L};

	for (long i = 0; i < pairs; i++) {
		DTRACE_PROBE1(kc, start, i);
		nanosleep(&pause, NULL);
		DTRACE_PROBE1(kc, done, i);
	}
	return 0;
}
