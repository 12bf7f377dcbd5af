/* The program scripts/check-wheel traces inside the bare Debian root: it is
 * compiled on the build host (the root has no compiler) and fires every
 * integer width at its extremes and a string, three times, so the expected
 * output is known to the last digit. */
#include <stdint.h>
#include <sys/sdt.h>

int main(void)
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
	return 0;
}
