/* Fires USDT probes whose arguments cover every width (1, 2, 4, 8 bytes),
 * signed and unsigned, with boundary values, in every operand form GCC -O2
 * emits: registers, memory (N@disp(%reg)), constants (N@$K) and
 * base+index*scale (N@disp(%reg,%reg,S)).  Each hit is also printed to
 * stdout as "provider:name v0 v1 ..." so a test can compare.
 * Usage: args_widths [ROUNDS [OUTFILE]] (OUTFILE instead of stdout) */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>

struct srow { int8_t a; int16_t b; int32_t c; int64_t d; };
struct urow { uint8_t a; uint16_t b; uint32_t c; uint64_t d; };

static const volatile struct srow kSigned[] = {
	{INT8_MIN, INT16_MIN, INT32_MIN, INT64_MIN},
	{INT8_MAX, INT16_MAX, INT32_MAX, INT64_MAX},
	{0, 0, 0, 0},
	{-1, -1, -1, -1},
};
static const volatile struct urow kUnsigned[] = {
	{0, 0, 0, 0},
	{UINT8_MAX, UINT16_MAX, UINT32_MAX, UINT64_MAX},
	{1, 1, 1, 1},
	{0x80, 0x8000, 0x80000000u, 0x8000000000000000ull},
};
#define NROWS 4

/* Arguments in registers: values loaded from a volatile table. */
__attribute__((noinline)) static void fire_registers(int k)
{
	int8_t a = kSigned[k].a;
	int16_t b = kSigned[k].b;
	int32_t c = kSigned[k].c;
	int64_t d = kSigned[k].d;
	DTRACE_PROBE4(args, reg_signed, a, b, c, d);
	printf("args:reg_signed %d %d %d %" PRId64 "\n", a, b, c, d);

	uint8_t e = kUnsigned[k].a;
	uint16_t f = kUnsigned[k].b;
	uint32_t g = kUnsigned[k].c;
	uint64_t h = kUnsigned[k].d;
	DTRACE_PROBE4(args, reg_unsigned, e, f, g, h);
	printf("args:reg_unsigned %u %u %u %" PRIu64 "\n", e, f, g, h);
}

/* Arguments in memory: fields of a volatile struct on the stack. */
__attribute__((noinline)) static void fire_memory(int k)
{
	volatile struct srow s;
	volatile struct urow u;
	s.a = kSigned[k].a; s.b = kSigned[k].b; s.c = kSigned[k].c; s.d = kSigned[k].d;
	u.a = kUnsigned[k].a; u.b = kUnsigned[k].b; u.c = kUnsigned[k].c; u.d = kUnsigned[k].d;
	DTRACE_PROBE4(args, mem_signed, s.a, s.b, s.c, s.d);
	printf("args:mem_signed %d %d %d %" PRId64 "\n", s.a, s.b, s.c, s.d);
	DTRACE_PROBE4(args, mem_unsigned, u.a, u.b, u.c, u.d);
	printf("args:mem_unsigned %u %u %u %" PRIu64 "\n", u.a, u.b, u.c, u.d);
}

/* Literal constants: the note says -4@$5 and so on. */
__attribute__((noinline)) static void fire_constants(void)
{
	DTRACE_PROBE5(args, consts, 5, -1, 0, INT64_MIN, UINT64_MAX);
	printf("args:consts %d %d %d %" PRId64 " %" PRIu64 "\n", 5, -1, 0, INT64_MIN, UINT64_MAX);
}

/* base+index*scale: arr[i] with arr and i both in registers. */
__attribute__((noinline)) static void fire_indexed(const long *arr, const int *iarr, long n)
{
	for (long i = 0; i < n; i++) {
		DTRACE_PROBE3(args, indexed, i, arr[i], iarr[i]);
		printf("args:indexed %ld %ld %d\n", i, arr[i], iarr[i]);
	}
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 1;
	if (argc > 2 && !freopen(argv[2], "w", stdout))
		return 2;
	long arr[6];
	int iarr[6];
	for (int i = 0; i < 6; i++) {
		arr[i] = (i - 3) * 1000000007L;
		iarr[i] = (i % 2 ? -1 : 1) * (i + 1) * 100000;
	}
	for (long r = 0; r < rounds; r++) {
		for (int k = 0; k < NROWS; k++) {
			fire_registers(k);
			fire_memory(k);
		}
		fire_constants();
		fire_indexed(arr, iarr, 6);
	}
	return 0;
}
