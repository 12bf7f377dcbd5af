/* The probe-carrying program behind `pyusdt demo`: it fires demo:tick and
 * demo:work__done with known values so the demo has something real to show.
 * Usage: pyusdt-demo-target [COUNT [INTERVAL_MS]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>
#include <time.h>

static const char *const kLabels[] = {"alpha", "beta", "gamma", "delta"};

int main(int argc, char **argv)
{
	long count = argc > 1 ? atol(argv[1]) : 20;
	long interval_ms = argc > 2 ? atol(argv[2]) : 100;
	struct timespec pause = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
	size_t label_bytes = 0;
	const char *volatile *labels = (const char *volatile *)kLabels;

	/* A string the program never touches may sit in a page not yet faulted
	 * in, which a tracer cannot read; real programs use their strings. */
	for (int i = 0; i < 4; i++)
		label_bytes += strlen(labels[i]);

	for (long i = 0; i < count; i++) {
		const char *label = kLabels[i % 4];
		int value = (int)(i * i) - 10;
		DTRACE_PROBE3(demo, tick, i, value, label);
		nanosleep(&pause, NULL);
		DTRACE_PROBE2(demo, work__done, i, (unsigned long)interval_ms * 1000000UL);
	}
	printf("demo target fired %ld ticks (%zu label bytes)\n", count, label_bytes);
	return 0;
}
