/* Three probes whose notes a test then corrupts in the binary: one's
 * provider name becomes bytes that are not UTF-8 (mangled:one), and the
 * others must still be listed and traced (intact:two fires twice).
 * Usage: notes_malformed */
#include <sys/sdt.h>

int main(void)
{
	for (int i = 0; i < 2; i++) {
		DTRACE_PROBE1(mangled, one, i);
		DTRACE_PROBE1(intact, two, 10 + i);
	}
	return 0;
}
