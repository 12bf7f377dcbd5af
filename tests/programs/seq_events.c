/* Numbered events, for the tests of files written by `pyusdt trace --output`.
 *
 * Event number s (0, 1, 2, ... over the whole run) fires
 *   seq:event(s, INT64_MIN + s, UINT64_MAX - s, label, -(s % 128))
 * with types uint64_t, int64_t, uint64_t, char *, int8_t, and label by s % 4:
 *   0: "ev-<s>"   1: ""   2: "h\xc3\xa9llo \xe2\x9c\x93 <s>" (UTF-8)
 *   3: "long label \xe2\x9c\x93\xe2\x9c\x93\xe2\x9c\x93 <s>" (read with 16 bytes, cut inside
 *      the second check mark)
 *
 * Usage: seq_events N [hold [stop-parent]]
 *   prints its pid, fires N events, prints "fired N"; then with "hold" waits
 *   until killed, otherwise fires K more for every line "K" on stdin (and
 *   prints "fired TOTAL") until EOF.  With "stop-parent" (a `pyusdt trace
 *   -c` target), the parent, pyusdt, is stopped while the N events fire:
 *   whatever its --duration, it cannot end the trace before they are all
 *   recorded, however slow the machine. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/sdt.h>
#include <unistd.h>

static uint64_t next_seq;

__attribute__((noinline)) static void fire(long n)
{
	for (long k = 0; k < n; k++, next_seq++) {
		uint64_t s = next_seq;
		char label[96];
		switch (s % 4) {
		case 0: snprintf(label, sizeof label, "ev-%llu", (unsigned long long)s); break;
		case 1: label[0] = '\0'; break;
		case 2: snprintf(label, sizeof label, "h\xc3\xa9llo \xe2\x9c\x93 %llu", (unsigned long long)s); break;
		default: snprintf(label, sizeof label, "long label \xe2\x9c\x93\xe2\x9c\x93\xe2\x9c\x93 %llu",
				  (unsigned long long)s);
		}
		int64_t neg = INT64_MIN + (int64_t)s;
		uint64_t big = UINT64_MAX - s;
		int8_t small = (int8_t)-(int)(s % 128);
		DTRACE_PROBE5(seq, event, s, neg, big, label, small);
	}
	printf("fired %llu\n", (unsigned long long)next_seq);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s N [hold]\n", argv[0]);
		return 2;
	}
	printf("%d\n", (int)getpid());
	fflush(stdout);
	int stop_parent = argc > 3 && !strcmp(argv[3], "stop-parent");
	if (stop_parent)
		kill(getppid(), SIGSTOP);
	fire(atol(argv[1]));
	if (stop_parent)
		kill(getppid(), SIGCONT);
	if (argc > 2 && !strcmp(argv[2], "hold")) {
		for (;;)
			pause();
	}
	char line[32];
	while (fgets(line, sizeof line, stdin))
		fire(atol(line));
	return 0;
}
