/* A program linked against libproc_probes.so (-lproc_probes, rpath): main()
 * at once calls proclib_fire(i, 1000*i + 7, "linked-<i>") for i in 0..N-1
 * (N = argv[1], default 5), then fires its own proclinked:done(N).
 * The library's constructor fires proclibinit:ctor(4242) before main(). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>

void proclib_fire(int i, long value, const char *label);

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 5;
	char label[32];

	for (int i = 0; i < n; i++) {
		snprintf(label, sizeof label, "linked-%d", i);
		proclib_fire(i, 1000L * i + 7, label);
	}
	DTRACE_PROBE1(proclinked, done, n);
	return 0;
}
