/* Records of every length: rec:aN fires with N = 0..12 integer arguments of
 * mixed widths and signs, and rec:mixed with 12 arguments, five of them
 * strings (empty, short, str_len - 1 bytes, str_len bytes, long) between
 * narrow negative integers, and rec:strs3 with 3 arguments, two of them
 * strings (a site of at most 3 arguments sends a short record, its strings
 * right after its arguments).  The ring buffer carries only the arguments a
 * probe has and its strings as long as they are; the test checks that every
 * row comes back exactly as the probe fired it.  Each round r changes the
 * values (r is in most of them); the strings are in the heap (faulted in).
 * Usage: stream_records [ROUNDS] */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 1;
	char *s0 = strdup(""), *s1 = strdup("ab"), *s2 = strdup("fifteen-bytes!!"), *s3 = strdup("sixteen-bytes!!!"),
	     *s4 = strdup("a string much longer than sixteen bytes");
	for (long r = 0; r < rounds; r++) {
		int8_t i8 = (int8_t)(-1 - r);           /* -1, -2, ... */
		uint8_t u8 = (uint8_t)(250 + r);        /* 250, 251, ... */
		int16_t i16 = (int16_t)(-30000 - r);
		uint16_t u16 = (uint16_t)(65000 + r);
		int32_t i32 = (int32_t)(-2000000000 - r);
		uint32_t u32 = (uint32_t)(4000000000u + r);
		int64_t i64 = (int64_t)(-9000000000000000000LL - r);
		uint64_t u64 = (uint64_t)(18000000000000000000ULL + r);
		long l = 1000 + r;
		DTRACE_PROBE(rec, a0);
		DTRACE_PROBE1(rec, a1, i8);
		DTRACE_PROBE2(rec, a2, i8, u8);
		DTRACE_PROBE3(rec, a3, i8, u8, i16);
		DTRACE_PROBE4(rec, a4, i8, u8, i16, u16);
		DTRACE_PROBE5(rec, a5, i8, u8, i16, u16, i32);
		DTRACE_PROBE6(rec, a6, i8, u8, i16, u16, i32, u32);
		DTRACE_PROBE7(rec, a7, i8, u8, i16, u16, i32, u32, i64);
		DTRACE_PROBE8(rec, a8, i8, u8, i16, u16, i32, u32, i64, u64);
		DTRACE_PROBE9(rec, a9, i8, u8, i16, u16, i32, u32, i64, u64, l);
		DTRACE_PROBE10(rec, a10, i8, u8, i16, u16, i32, u32, i64, u64, l, l + 1);
		DTRACE_PROBE11(rec, a11, i8, u8, i16, u16, i32, u32, i64, u64, l, l + 1, l + 2);
		DTRACE_PROBE12(rec, a12, i8, u8, i16, u16, i32, u32, i64, u64, l, l + 1, l + 2, l + 3);
		DTRACE_PROBE12(rec, mixed, i8, s0, i16, s1, i32, s2, i64, s3, u8, s4, u16, l);
		DTRACE_PROBE3(rec, strs3, s4, i16, s1);
	}
	return 0;
}
