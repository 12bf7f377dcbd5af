/* The program scripts/check-wheel traces inside the bare Debian roots, and
 * scripts/check-kernels (as kc_ints) on every kernel: it is compiled on the
 * build host (the roots have no compiler) and fires every integer width at
 * its extremes and a string, three times, so the expected output is known
 * to the last digit.
 * Usage: check-wheel-target          fire at once, then exit
 *        check-wheel-target wait     print "ready PID", wait for one line on
 *                                    stdin, fire, print "fired", then wait for
 *                                    EOF on stdin (a target for -p) */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/sdt.h>
#include <unistd.h>

static void fire(void)
{
	/* volatile keeps each value in its own type, so the probe records the
	 * argument's true width and signedness. */
	volatile int8_t i8 = INT8_MIN;
	volatile uint8_t u8 = UINT8_MAX;
	volatile int16_t i16 = INT16_MIN;
	volatile uint16_t u16 = UINT16_MAX;
	volatile int32_t i32 = INT32_MIN;
	volatile uint32_t u32 = UINT32_MAX;
	volatile int64_t i64_min = INT64_MIN;
	volatile int64_t i64_max = INT64_MAX;
	volatile uint64_t u64 = UINT64_MAX;

	for (int i = 0; i < 3; i++) {
		DTRACE_PROBE9(check, ints, i8, u8, i16, u16, i32, u32, i64_min, i64_max, u64);
		DTRACE_PROBE2(check, text, i, "traced with no compiler here");
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
