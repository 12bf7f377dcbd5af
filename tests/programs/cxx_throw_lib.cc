// A C++ library that throws and catches, for tests/test_late_objects.py:
// libstdc++ (libstdcxx:throw, libstdcxx:catch) comes in with it when a C
// program dlopens it, after the trace began.
#include <stdexcept>

extern "C" long throw_and_catch(long n)
{
	long caught = 0;
	for (long i = 0; i < n; i++) {
		try {
			throw std::runtime_error("pyusdt");
		} catch (const std::exception &) {
			caught++;
		}
	}
	return caught;
}
