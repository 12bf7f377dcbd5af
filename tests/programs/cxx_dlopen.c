/* Loads a C++ library (and with it libstdc++) after the trace began, then
 * has it throw and catch N exceptions.  Usage: cxx_dlopen LIB N */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	void *lib = dlopen(argv[1], RTLD_NOW);
	if (!lib) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	long (*throw_and_catch)(long) = (long (*)(long))dlsym(lib, "throw_and_catch");
	printf("caught %ld\n", throw_and_catch(atol(argv[2])));
	return 0;
}
