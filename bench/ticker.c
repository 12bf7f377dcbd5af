/*
 * A process firing continuously: startup:tick(i) once every millisecond,
 * until killed.  bench/section_startup.py attaches tracers to it (-p PID)
 * and times how long each takes to print its first event.
 */
#include <time.h>
#include <sys/sdt.h>

int main(void)
{
	struct timespec period = { 0, 1000000 };
	for (long i = 0;; i++) {
		DTRACE_PROBE1(startup, tick, i);
		nanosleep(&period, NULL);
	}
}
