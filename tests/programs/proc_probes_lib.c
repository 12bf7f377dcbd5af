/* A shared library carrying USDT probes, for the library tests.
 * Built with -shared -fPIC as libproc_probes.so.
 *
 * proclib:fire(int i, long value, const char *label)  fired by proclib_fire()
 * proclibinit:ctor(int magic=4242)                    fired once by the
 *     library constructor, i.e. while the dynamic loader (or dlopen) runs it,
 *     before the program's main() or before dlopen returns. */
#include <sys/sdt.h>

__attribute__((constructor)) static void proclib_ctor(void)
{
	int magic = 4242;
	DTRACE_PROBE1(proclibinit, ctor, magic);
}

__attribute__((noinline)) void proclib_fire(int i, long value, const char *label)
{
	DTRACE_PROBE3(proclib, fire, i, value, label);
}
