/* A semaphore-guarded probe, semprov:hit.  The program prints "ready", then
 * for each line N read from stdin fires semprov:hit(N) only if the
 * semaphore is set, and answers "fired N" or "skipped N".  It exits on EOF.
 * semprov:plain fires for every line before the check: it has a semaphore
 * too (sys/sdt.h gives every probe of a file one when _SDT_HAS_SEMAPHORES is
 * set) but the program never looks at it. */
#define _SDT_HAS_SEMAPHORES 1
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>

unsigned short semprov_hit_semaphore __attribute__((section(".probes"))) __attribute__((used));
unsigned short semprov_plain_semaphore __attribute__((section(".probes"))) __attribute__((used));
#define SEMPROV_HIT_ENABLED() __builtin_expect(semprov_hit_semaphore, 0)

int main(void)
{
	char line[64];
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	while (fgets(line, sizeof line, stdin)) {
		long n = atol(line);
		DTRACE_PROBE1(semprov, plain, n);
		if (SEMPROV_HIT_ENABLED()) {
			DTRACE_PROBE2(semprov, hit, n, (int)semprov_hit_semaphore);
			printf("fired %ld\n", n);
		} else {
			printf("skipped %ld\n", n);
		}
	}
	return 0;
}
