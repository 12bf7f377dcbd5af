/* Fires USDT probes whose argument is 16 bytes wide, in each form a note
 * gives one: a struct and an __int128 passed by value on the stack (GCC -O2
 * writes 16@-24(%rsp) and -16@-24(%rsp)), a static unsigned __int128
 * (16@g.0(%rip)), and an __int128 held in rdx:rax (a note written by hand
 * as -16@%rax, as GCC writes for a register pair: rax holds the low half).
 * A trace reads the first 8 bytes of each: the low half, little-endian.
 * Round i prints "provider:name LOW HIGH" per hit, halves as unsigned hex,
 * so a test can compare.  Usage: args_wide [ROUNDS [OUTFILE]] (OUTFILE
 * instead of stdout) */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>

struct pair {
	uint64_t lo, hi;
};

#define LOW(v) ((uint64_t)(v))
#define HIGH(v) ((uint64_t)((unsigned __int128)(v) >> 64))

static void print(const char *probe, uint64_t lo, uint64_t hi)
{
	printf("wide:%s %" PRIx64 " %" PRIx64 "\n", probe, lo, hi);
}

__attribute__((noinline)) static void fire_struct(long i)
{
	volatile struct pair p = {0x1122334455667700ull + i, 0x99aabbccddeeff00ull + i};
	STAP_PROBE1(wide, mem_struct, p);
	print("mem_struct", p.lo, p.hi);
}

__attribute__((noinline)) static void fire_int128(long i)
{
	/* A negative low half: read as signed, it is a negative int64. */
	volatile __int128 v = ((__int128)(0x0123456789abcdefll + i) << 64) | (0xfedcba9876543210ull + i);
	STAP_PROBE1(wide, mem_int128, v);
	print("mem_int128", LOW(v), HIGH(v));
}

__attribute__((noinline)) static void fire_global(long i)
{
	static volatile unsigned __int128 g;
	g = ((unsigned __int128)7 << 64) | (0x8000000000000001ull + i);
	STAP_PROBE1(wide, global_u128, g);
	print("global_u128", LOW(g), HIGH(g));
}

/* The probe site is a nop at which rax and rdx hold the value's halves. */
__attribute__((noinline)) static void fire_register(long i)
{
	uint64_t lo = (uint64_t)-1 - i, hi = 5 + i;
	__asm__ __volatile__(
		"990: nop\n"
		".pushsection .note.stapsdt,\"?\",\"note\"\n"
		".balign 4\n"
		".4byte 992f-991f, 994f-993f, 3\n"
		"991: .asciz \"stapsdt\"\n"
		"992: .balign 4\n"
		"993: .8byte 990b\n"
		".8byte _.stapsdt.base\n"
		".8byte 0\n"
		".asciz \"wide\"\n"
		".asciz \"reg_int128\"\n"
		".asciz \"-16@%%rax\"\n"
		"994: .balign 4\n"
		".popsection\n"
		:
		: "a"(lo), "d"(hi));
	print("reg_int128", lo, hi);
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 1;
	if (argc > 2 && !freopen(argv[2], "w", stdout))
		return 2;
	for (long i = 0; i < rounds; i++) {
		fire_struct(i);
		fire_int128(i);
		fire_global(i);
		fire_register(i);
	}
	return 0;
}
