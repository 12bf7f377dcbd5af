/* Start/done pairs with known durations, for the latency tests.
 *
 * Probes: lat:start(long id, int cls) and lat:done(long id, int cls).
 *
 * Usage: agg_latency MODE ROUNDS [REPORT]
 *   seq      each round, on the main thread: start/done pairs around sleeps
 *            of 1.2 ms (cls 0), 5 ms (cls 1) and 20 ms (cls 2).
 *   threads  each round, two threads interleave: A starts (cls 0), B starts
 *            (cls 1), A sleeps 10 ms then is done, B then sleeps 40 ms and
 *            is done: A ~10 ms, B ~50 ms; paired by thread, not by id (both
 *            use the same id, 7).
 *   ids      each round, on one thread: start(1), start(2), 10 ms, done(1),
 *            40 ms, done(2): request 1 ~10 ms, request 2 ~50 ms when paired
 *            by id (ids are 1000 * round + 1 and + 2).
 *   orphans  done(900), done(901), done(902) without a start; then starts
 *            1000 .. 1000 + ROUNDS - 1 that never complete; then one complete
 *            pair, id 5000 (pinned to one CPU).
 * The report (when given) has "PID <pid>", then a line per probe fired:
 * "START|DONE <id> <cls> <tid> <before> <after>", CLOCK_MONOTONIC ns read
 * just before and just after the probe.  The kernel's timestamp of the hit
 * lies between the two, so any pairing of a start with a done took between
 * done.before - start.after and done.after - start.before: the tests
 * compute every expected bucket from these, whatever the sleeps really
 * took on a loaded machine. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>
#include <time.h>
#include <unistd.h>

static FILE *report;
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void log_probe(const char *what, long id, int cls, long long before, long long after)
{
	if (!report)
		return;
	pthread_mutex_lock(&report_lock);
	fprintf(report, "%s %ld %d %d %lld %lld\n", what, id, cls, (int)gettid(), before, after);
	pthread_mutex_unlock(&report_lock);
}

__attribute__((noinline)) static void start_probe(long id, int cls)
{
	DTRACE_PROBE2(lat, start, id, cls);
}

__attribute__((noinline)) static void done_probe(long id, int cls)
{
	DTRACE_PROBE2(lat, done, id, cls);
}

static void start(long id, int cls)
{
	long long before = now_ns();
	start_probe(id, cls);
	log_probe("START", id, cls, before, now_ns());
}

static void done(long id, int cls)
{
	long long before = now_ns();
	done_probe(id, cls);
	log_probe("DONE", id, cls, before, now_ns());
}

static void timed(long id, int cls, long us)
{
	start(id, cls);
	sleep_us(us);
	done(id, cls);
}

/* threads mode: A and B hand over with semaphores. */
static sem_t b_go, a_go, b_finish;

static void *thread_a(void *unused)
{
	(void)unused;
	start(7, 0);
	sem_post(&b_go);   /* B starts */
	sem_wait(&a_go);   /* ... once it has */
	sleep_us(10000);
	done(7, 0);
	sem_post(&b_finish);
	return NULL;
}

static void *thread_b(void *unused)
{
	(void)unused;
	sem_wait(&b_go);
	start(7, 1);
	sem_post(&a_go);
	sem_wait(&b_finish); /* A is done */
	sleep_us(40000);
	done(7, 1);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s seq|threads|ids|orphans ROUNDS [REPORT]\n", argv[0]);
		return 2;
	}
	const char *mode = argv[1];
	long rounds = atol(argv[2]);
	if (argc > 3 && !(report = fopen(argv[3], "w")))
		return 4;
	if (report)
		fprintf(report, "PID %d\n", (int)getpid());

	if (!strcmp(mode, "seq")) {
		for (long r = 0; r < rounds; r++) {
			timed(3 * r, 0, 1200);
			timed(3 * r + 1, 1, 5000);
			timed(3 * r + 2, 2, 20000);
		}
	} else if (!strcmp(mode, "threads")) {
		for (long r = 0; r < rounds; r++) {
			pthread_t a, b;
			sem_init(&b_go, 0, 0);
			sem_init(&a_go, 0, 0);
			sem_init(&b_finish, 0, 0);
			pthread_create(&b, NULL, thread_b, NULL);
			pthread_create(&a, NULL, thread_a, NULL);
			pthread_join(a, NULL);
			pthread_join(b, NULL);
		}
	} else if (!strcmp(mode, "ids")) {
		for (long r = 0; r < rounds; r++) {
			long id1 = 1000 * r + 1, id2 = 1000 * r + 2;
			start(id1, 0);
			start(id2, 1);
			sleep_us(10000);
			done(id1, 0);
			sleep_us(40000);
			done(id2, 1);
		}
	} else if (!strcmp(mode, "orphans")) {
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(sched_getcpu(), &one);
		if (sched_setaffinity(0, sizeof one, &one))
			return 5;
		for (long k = 0; k < 3; k++)
			done(900 + k, 0);
		for (long k = 0; k < rounds; k++)
			start(1000 + k, 1);
		timed(5000, 2, 1200);
	} else {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	}
	if (report)
		fclose(report);
	return 0;
}
