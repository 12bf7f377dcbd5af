/* scripts/check-kernels: every integer width and sign at its extremes.
 * Fires kc:ints(int8 min, uint8 max, int16 min, uint16 max, int32 min,
 * uint32 max, int64 min, int64 max, uint64 max) and kc:text(i, "...") three
 * times (i = 0, 1, 2), then exits.
 * Usage: kc_ints          fire at once
 *        kc_ints wait     print "ready PID", wait for one line on stdin, fire,
 *                         print "fired", then wait for EOF on stdin */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/sdt.h>
#include <unistd.h>

static void fire(void)
{
	/* volatile: each value keeps its own type, so the note records its width. */
	volatile int8_t a = INT8_MIN;
	volatile uint8_t b = UINT8_MAX;
	volatile int16_t c = INT16_MIN;
	volatile uint16_t d = UINT16_MAX;
	volatile int32_t e = INT32_MIN;
	volatile uint32_t f = UINT32_MAX;
	volatile int64_t g = INT64_MIN;
	volatile int64_t h = INT64_MAX;
	volatile uint64_t k = UINT64_MAX;

	for (int i = 0; i < 3; i++) {
		DTRACE_PROBE9(kc, ints, a, b, c, d, e, f, g, h, k);
		DTRACE_PROBE2(kc, text, i, "every width, both signs");
	}
}

int main(int argc, char **argv)
{
	char line[64];
	int wait = argc > 1 && strcmp(argv[1], "wait") == 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (wait) {
		printf("ready %d\n", (int)getpid());
		if (!fgets(line, sizeof line, stdin))
			return 3;
	}
	fire();
	if (wait) {
		printf("fired\n");
		while (fgets(line, sizeof line, stdin))
			;
	}
	return 0;
}
