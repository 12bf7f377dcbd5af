/* scripts/check-kernels: a semaphore-guarded probe.  Prints
 * "ready PID ADDR" (ADDR: the address of kcsem_guarded_semaphore, in hex),
 * then answers one command per line on stdin:
 *   s   "sem N" (the semaphore's value now)
 *   f   fires kcsem:guarded(7, N) if the semaphore is set: "fired N" or "skipped"
 * and exits on EOF.  kcsem:plain(0) fires unguarded at every command. */
#define _SDT_HAS_SEMAPHORES 1
#include <stdio.h>
#include <sys/sdt.h>
#include <unistd.h>

unsigned short kcsem_guarded_semaphore __attribute__((section(".probes"))) __attribute__((used));
unsigned short kcsem_plain_semaphore __attribute__((section(".probes"))) __attribute__((used));

int main(void)
{
	char line[64];

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d %p\n", (int)getpid(), (void *)&kcsem_guarded_semaphore);
	while (fgets(line, sizeof line, stdin)) {
		unsigned sem = *(volatile unsigned short *)&kcsem_guarded_semaphore;
		DTRACE_PROBE1(kcsem, plain, 0);
		if (line[0] == 's') {
			printf("sem %u\n", sem);
		} else if (line[0] == 'f') {
			if (sem) {
				DTRACE_PROBE2(kcsem, guarded, 7, sem);
				printf("fired %u\n", sem);
			} else {
				printf("skipped\n");
			}
		}
	}
	return 0;
}
