/* A deterministic workload for the aggregation tests.
 *
 * Each round fires agg:value(i, v, label, u, grp) once for every value of
 * kValues (i its index, v the value as a signed 64-bit long, label a heap
 * string chosen by kLabelOf, u the value as an unsigned 32-bit int, grp
 * (i % 3) - 1 as a signed 32-bit int), then agg:other(k) OTHER_PER_ROUND times.
 *
 * Usage: agg_values [-r ROUNDS] [-o REPORT] [-s SLEEP_MS] [-w]
 *   -r  rounds (default 1)
 *   -o  write the report to this file (default: no report)
 *   -s  sleep this many ms after each round (default 0)
 *   -w  wait for one line on stdin before the first round
 *
 * The report has one line per hit and the program's own aggregates:
 *   PID <pid>
 *   VALUE <i> <v> <label> <u> <grp>       (every agg:value hit, in order)
 *   OTHER <count>                         (agg:other hits)
 *   LABEL <label> <count> <sum> <min> <max> <avg>
 *   ALL <count> <sum> <min> <max> <avg>   (avg: C division, toward zero)
 * Values stay below 2^31 in magnitude: bpftrace 0.17's hist() truncates
 * larger ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>
#include <time.h>
#include <unistd.h>

static const long kValues[] = {
	-1000000, -5, -1, 0, 0, 1, 1, 2, 3, 4, 7, 8, 15, 16, 31, 63, 64, 99, 100,
	127, 128, 255, 256, 511, 512, 999, 1000, 1023, 1024, 1025, 4095, 65536,
	1048575, 1048576, 3000000, 1073741823, 1073741824, 2000000000, 2147483647,
};
#define NVALUES (sizeof(kValues) / sizeof(kValues[0]))

static const char *const kLabels[] = {"alpha", "beta", "gamma-3", "delta"};
#define NLABELS (sizeof(kLabels) / sizeof(kLabels[0]))
/* Label of value i: kLabels[kLabelOf[i % 10]] (counts 16, 12, 8, 3 per round). */
static const int kLabelOf[10] = {0, 1, 0, 2, 0, 1, 0, 2, 1, 3};
#define OTHER_PER_ROUND 5

struct acc {
	long long count, sum, min, max;
};

static void add(struct acc *a, long v)
{
	if (a->count == 0 || v < a->min)
		a->min = v;
	if (a->count == 0 || v > a->max)
		a->max = v;
	a->count++;
	a->sum += v;
}

static void print_acc(FILE *f, const struct acc *a)
{
	fprintf(f, "%lld %lld %lld %lld %lld\n", a->count, a->sum, a->min, a->max,
		a->count ? a->sum / a->count : 0);
}

__attribute__((noinline)) static void fire(long i, long v, const char *label, unsigned u, int grp)
{
	DTRACE_PROBE5(agg, value, i, v, label, u, grp);
}

__attribute__((noinline)) static void other(long k)
{
	DTRACE_PROBE1(agg, other, k);
}

int main(int argc, char **argv)
{
	long rounds = 1, sleep_ms = 0;
	const char *report = NULL;
	int wait = 0, opt;
	while ((opt = getopt(argc, argv, "r:o:s:w")) != -1) {
		switch (opt) {
		case 'r': rounds = atol(optarg); break;
		case 'o': report = optarg; break;
		case 's': sleep_ms = atol(optarg); break;
		case 'w': wait = 1; break;
		default: return 2;
		}
	}
	char *labels[NLABELS];
	for (size_t k = 0; k < NLABELS; k++)
		labels[k] = strdup(kLabels[k]); /* on the heap, pages touched */
	if (wait) {
		char line[16];
		if (!fgets(line, sizeof line, stdin))
			return 3;
	}
	FILE *f = report ? fopen(report, "w") : NULL;
	if (report && !f)
		return 4;
	struct acc all = {0}, per[NLABELS] = {{0}};
	long others = 0;
	if (f)
		fprintf(f, "PID %d\n", (int)getpid());
	for (long r = 0; r < rounds; r++) {
		for (size_t i = 0; i < NVALUES; i++) {
			long v = kValues[i];
			int l = kLabelOf[i % 10];
			unsigned u = (unsigned)v;
			int grp = (int)(i % 3) - 1;
			fire((long)i, v, labels[l], u, grp);
			add(&all, v);
			add(&per[l], v);
			if (f)
				fprintf(f, "VALUE %zu %ld %s %u %d\n", i, v, labels[l], u, grp);
		}
		for (long k = 0; k < OTHER_PER_ROUND; k++, others++)
			other(k);
		if (sleep_ms) {
			struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
			while (nanosleep(&ts, &ts) != 0)
				;
		}
	}
	if (f) {
		fprintf(f, "OTHER %ld\n", others);
		for (size_t k = 0; k < NLABELS; k++) {
			fprintf(f, "LABEL %s ", labels[k]);
			print_acc(f, &per[k]);
		}
		fprintf(f, "ALL ");
		print_acc(f, &all);
		fclose(f);
	}
	for (size_t k = 0; k < NLABELS; k++)
		free(labels[k]);
	return 0;
}
