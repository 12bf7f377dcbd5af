/* scripts/check-kernels: known values for count, hist and lhist in the kernel.
 * kc:val(key, v, label) fires once per row of kRows (labels copied to the
 * heap), then kc:other() fires 4 times.  Usage: kc_agg */
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>

/* Totals differ per key (5, 4, 2) and per label (red 5, green 4, blue 2),
 * so the order of the printed maps does not depend on a tie. */
static const struct { long key; long v; const char *label; } kRows[] = {
	{1, 0, "red"},    {1, 1, "red"},    {1, 5, "green"},  {1, -3, "green"},
	{1, 7, "red"},    {2, 10, "green"}, {2, 15, "red"},   {2, 64, "green"},
	{2, 100, "blue"}, {3, 99, "red"},   {3, 1000, "blue"},
};
#define NROWS (sizeof(kRows) / sizeof(kRows[0]))

int main(void)
{
	for (size_t i = 0; i < NROWS; i++) {
		char *label = strdup(kRows[i].label);
		long key = kRows[i].key, v = kRows[i].v;
		DTRACE_PROBE3(kc, val, key, v, label);
		free(label);
	}
	for (int i = 0; i < 4; i++)
		DTRACE_PROBE1(kc, other, i);
	return 0;
}
