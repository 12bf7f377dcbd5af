/*
 * Rate-paced workload: THREADS threads fire bench:fire(i, i*3, (int)(i & 0xffff))
 * at RATE events per second in total for SECONDS seconds, or as fast as they
 * can when RATE is 0.
 *
 *   paced RATE SECONDS THREADS [OUTFILE]
 *   -> fired=2999000 elapsed_ns=3000012345 rate=999663.1 max_behind_ns=1234 rate_asked=1000000
 *      sum0=... sum1=... sum2=...
 *
 * Pacing is per 1 ms tick and per thread (each fires RATE/THREADS): at each
 * tick the events due by its end are fired back to back, then the thread
 * sleeps (absolute clock) until the next tick.  A tracer that slows every
 * fire down can make a thread fall behind: it then fires without sleeping to
 * catch up, and max_behind_ns says by how much the schedule slipped at worst
 * (the benchmark counts a run whose achieved rate is under the asked one as
 * "could not keep up").  Thread t fires i = t, t + THREADS, t + 2*THREADS,
 * ...; the sums of the three arguments over every fire are printed so that
 * a tracer's received events can be checked exactly.
 *
 * The result goes to OUTFILE when given (a tracer running the command may
 * keep its stdout), else to stdout.  Built by bench/section_rates.py with
 * gcc -O2 -pthread.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/sdt.h>

#define TICK_NS 1000000LL
#define MAX_THREADS 64

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_until(long long t)
{
	struct timespec ts = { .tv_sec = t / 1000000000LL, .tv_nsec = t % 1000000000LL };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
		;
}

struct worker {
	pthread_t thread;
	int index, nthreads;
	double rate; /* this thread's share, events/s; 0 = unpaced */
	long long t0, duration;
	/* results */
	long fired;
	long long end, behind;
	unsigned long long sum0, sum1, sum2;
};

static inline void fire(struct worker *w, long k)
{
	long i = k * w->nthreads + w->index;
	DTRACE_PROBE3(bench, fire, i, i * 3, (int)(i & 0xffff));
	w->sum0 += (unsigned long long)i;
	w->sum1 += (unsigned long long)(i * 3);
	w->sum2 += (unsigned long long)(i & 0xffff);
}

static void *run(void *arg)
{
	struct worker *w = arg;
	long k = 0;
	long long t = w->t0;
	sleep_until(w->t0);
	if (w->rate == 0) {
		/* As fast as possible; the clock is read once per 1000 fires. */
		while (t - w->t0 < w->duration) {
			for (int j = 0; j < 1000; j++, k++)
				fire(w, k);
			t = now_ns();
		}
	} else {
		long long ticks = w->duration / TICK_NS;
		for (long long tick = 1; tick <= ticks; tick++) {
			long due = (long)(w->rate * (double)(tick * TICK_NS) / 1e9);
			for (; k < due; k++)
				fire(w, k);
			long long tick_end = w->t0 + tick * TICK_NS;
			t = now_ns();
			if (t > tick_end) {
				if (t - tick_end > w->behind)
					w->behind = t - tick_end;
			} else {
				sleep_until(tick_end);
			}
		}
		t = now_ns();
	}
	w->fired = k;
	w->end = t;
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s RATE SECONDS THREADS [OUTFILE]\n", argv[0]);
		return 2;
	}
	double rate = strtod(argv[1], NULL);
	double seconds = strtod(argv[2], NULL);
	int nthreads = atoi(argv[3]);
	if (rate < 0 || seconds <= 0 || nthreads < 1 || nthreads > MAX_THREADS) {
		fprintf(stderr, "RATE must be >= 0, SECONDS > 0, THREADS in 1..%d\n", MAX_THREADS);
		return 2;
	}
	static struct worker w[MAX_THREADS];
	/* Every thread starts on the same tick, a little after they all exist. */
	long long t0 = now_ns() + 2 * TICK_NS;
	for (int t = 0; t < nthreads; t++) {
		w[t] = (struct worker){ .index = t, .nthreads = nthreads, .rate = rate / nthreads,
					.t0 = t0, .duration = (long long)(seconds * 1e9) };
		if (pthread_create(&w[t].thread, NULL, run, &w[t]) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	long fired = 0;
	long long end = t0, behind = 0;
	unsigned long long s0 = 0, s1 = 0, s2 = 0;
	for (int t = 0; t < nthreads; t++) {
		pthread_join(w[t].thread, NULL);
		fired += w[t].fired;
		if (w[t].end > end)
			end = w[t].end;
		if (w[t].behind > behind)
			behind = w[t].behind;
		s0 += w[t].sum0;
		s1 += w[t].sum1;
		s2 += w[t].sum2;
	}
	long long elapsed = end - t0;
	FILE *out = stdout;
	if (argc > 4 && !(out = fopen(argv[4], "w"))) {
		perror(argv[4]);
		return 1;
	}
	fprintf(out, "fired=%ld elapsed_ns=%lld rate=%.1f max_behind_ns=%lld rate_asked=%.0f sum0=%llu sum1=%llu sum2=%llu\n",
		fired, elapsed, (double)fired * 1e9 / (double)elapsed, behind, rate, s0, s1, s2);
	return fclose(out) ? 1 : 0;
}
