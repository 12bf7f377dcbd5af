/* Two threads of one process firing thread_flood:tick(thread, seq) as fast
 * as they can, until killed: two producers filling the one ring buffer from
 * both CPUs at once (tests/test_wakeup.py).
 *
 * Usage: thread_flood    prints its pid, then fires. */
#include <pthread.h>
#include <stdio.h>
#include <sys/sdt.h>
#include <unistd.h>

#define THREADS 2

static void *fire(void *arg)
{
	long thread = (long)arg;
	for (unsigned long seq = 0;; seq++)
		DTRACE_PROBE2(thread_flood, tick, thread, seq);
	return NULL;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("%d\n", (int)getpid());
	pthread_t threads[THREADS];
	for (long t = 0; t < THREADS; t++)
		pthread_create(&threads[t], NULL, fire, (void *)t);
	pthread_join(threads[0], NULL);
	return 0;
}
