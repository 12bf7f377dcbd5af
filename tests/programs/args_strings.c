/* String arguments: an empty string, a plain one, a non-ASCII UTF-8 one, one
 * of exactly 15 bytes, one of exactly 16 and a long one, all copied to the
 * heap first so their pages are faulted in.  Each round fires strs:all with
 * all of them (args 1..6, arg0 is the round), then strs:one (index, string)
 * for each, then strs:bad (round, NULL) whose string cannot be read.
 * The program pins itself to the CPU it starts on, so every hit uses the
 * same per-CPU buffers in the tracer (a short string after a long one).
 * Usage: args_strings [ROUNDS] */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>

static const char *const kStrings[] = {
	"",
	"hello",
	"h\xc3\xa9llo \xe2\x9c\x93",                    /* "héllo ✓", 10 bytes */
	"fifteen-bytes!!",                               /* 15 bytes */
	"sixteen-bytes!!!",                              /* 16 bytes */
	"a string much longer than sixteen bytes, to be cut",
};
#define N (sizeof(kStrings) / sizeof(kStrings[0]))

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 1;
	char *s[N];
	const char *volatile nothing = NULL;
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	if (sched_setaffinity(0, sizeof one, &one))
		return 2;
	for (size_t i = 0; i < N; i++)
		s[i] = strdup(kStrings[i]);
	for (long r = 0; r < rounds; r++) {
		DTRACE_PROBE7(strs, all, r, s[0], s[1], s[2], s[3], s[4], s[5]);
		for (size_t i = 0; i < N; i++)
			DTRACE_PROBE2(strs, one, i, s[i]);
		DTRACE_PROBE2(strs, bad, r, nothing);
	}
	for (size_t i = 0; i < N; i++)
		free(s[i]);
	return 0;
}
