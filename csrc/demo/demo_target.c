/* The probe-carrying program behind `pyusdt demo`: it fires demo:tick and
 * demo:work__done with known values so the demo has something real to show.
 * Usage: pyusdt-demo-target [COUNT [INTERVAL_MS]] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>
#include <time.h>

static const char *const kLabels[] = {"alpha", "beta", "gamma", "delta"};

int main(int argc, char **argv)
{
	long count = argc > 1 ? atol(argv[1]) : 20;
	long interval_ms = argc > 2 ? atol(argv[2]) : 100;
	struct timespec pause = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};

	for (long i = 0; i < count; i++) {
		const char *label = kLabels[i % 4];
		int value = (int)(i * i) - 10;
		DTRACE_PROBE3(demo, tick, i, value, label);
		nanosleep(&pause, NULL);
		DTRACE_PROBE2(demo, work__done, i, (unsigned long)interval_ms * 1000000UL);
	}
	printf("demo target fired %ld ticks\n", count);
	return 0;
}
