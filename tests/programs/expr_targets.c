/* Probes for bpftrace expressions (tests/test_expressions.py): requests with
 * a method string, a status and a byte count; names passed as (pointer,
 * length) into one buffer with no NUL between them, as the JVM passes its
 * method names; and a pointer to a struct whose fields, and a string the
 * struct points to, are read by dereference.
 * Usage: expr_targets [ROUNDS] */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>

struct item {
	int32_t id;       /* offset 0 */
	int32_t delta;    /* offset 4: negative for odd ids */
	int64_t weight;   /* offset 8 */
	const char *name; /* offset 16 */
};

static const char *const kMethods[] = {"GET", "POST", "GET", "PUT", "GET"};
static const int kStatus[] = {200, 500, 503, 201, 404};
static const char *const kNames[] = {"alpha", "beta", "gamma"};

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 1;
	/* Names back to back, no NUL between them: "getRuntimeexitmain". */
	char *packed = strdup("getRuntimeexitmain");
	const size_t offsets[] = {0, 10, 14}, lengths[] = {10, 4, 4};
	char *methods[5];
	struct item items[3];
	for (int i = 0; i < 5; i++)
		methods[i] = strdup(kMethods[i]);
	for (int i = 0; i < 3; i++) {
		items[i].id = i + 1;
		items[i].delta = (i % 2) ? -(i + 1) * 7 : (i + 1) * 7;
		items[i].weight = (int64_t)(i + 1) * 1000000007LL;
		items[i].name = strdup(kNames[i]);
	}
	for (long r = 0; r < rounds; r++) {
		for (int i = 0; i < 5; i++) {
			long bytes = 1000L * (i + 1) + r;
			DTRACE_PROBE4(expr, request, methods[i], (long)(r * 5 + i), kStatus[i], bytes);
		}
		for (int i = 0; i < 3; i++)
			DTRACE_PROBE3(expr, name, (long)i, packed + offsets[i], (long)lengths[i]);
		for (int i = 0; i < 3; i++)
			DTRACE_PROBE2(expr, item, &items[i], (long)i);
	}
	return 0;
}
