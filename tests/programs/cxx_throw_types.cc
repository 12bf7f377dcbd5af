// Throws and catches exceptions of several types, for the libstdcxx:throw
// probe's type_info (tests/test_expressions.py): per round, 3
// std::runtime_error, 2 int and 1 std::out_of_range.  With a second
// argument "wait", it first says "ready" and waits for a line on stdin (a
// tracer attaching by pid has its turn).
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

static void raise_one(int kind)
{
	if (kind == 0)
		throw std::runtime_error("pyusdt");
	if (kind == 1)
		throw 42;
	throw std::out_of_range("pyusdt");
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? std::atol(argv[1]) : 1;
	const int kinds[] = {0, 1, 0, 2, 1, 0};
	long caught = 0;
	if (argc > 2) {
		char line[16];
		std::printf("ready\n");
		std::fflush(stdout);
		if (!std::fgets(line, sizeof line, stdin))
			return 1;
	}
	for (long r = 0; r < rounds; r++)
		for (int k : kinds) {
			try {
				raise_one(k);
			} catch (...) {
				caught++;
			}
		}
	std::printf("caught %ld\n", caught);
	return 0;
}
