/* Probes whose argument specs pyusdt cannot read, next to a normal one.
 * badspec:good is an ordinary sys/sdt.h probe; badspec:fsbase and
 * badspec:xmm are notes written by hand in the format sys/sdt.h emits,
 * with the args strings "8@%fs:0x28" and "-4@%xmm0".  Every round fires
 * all three.  Usage: args_badspec [ROUNDS] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>

/* One hand-made stapsdt note: a nop at the probe site, then the note
 * (pc, _.stapsdt.base, semaphore 0, provider, name, args) as sys/sdt.h lays
 * it out.  _.stapsdt.base is defined by the sys/sdt.h probes in this file. */
#define RAW_PROBE(provider, name, args)                                        \
	__asm__ __volatile__(                                                  \
		"990: nop\n"                                                   \
		".pushsection .note.stapsdt,\"?\",\"note\"\n"                  \
		".balign 4\n"                                                  \
		".4byte 992f-991f, 994f-993f, 3\n"                             \
		"991: .asciz \"stapsdt\"\n"                                    \
		"992: .balign 4\n"                                             \
		"993: .8byte 990b\n"                                           \
		".8byte _.stapsdt.base\n"                                      \
		".8byte 0\n"                                                   \
		".asciz \"" provider "\"\n"                                    \
		".asciz \"" name "\"\n"                                        \
		".asciz \"" args "\"\n"                                        \
		"994: .balign 4\n"                                             \
		".popsection\n")

__attribute__((noinline)) static void fire(long i)
{
	DTRACE_PROBE2(badspec, good, i, i * 7);
	RAW_PROBE("badspec", "fsbase", "8@%fs:0x28");
	RAW_PROBE("badspec", "xmm", "-4@%xmm0");
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 1;
	for (long i = 0; i < rounds; i++)
		fire(i);
	return 0;
}
