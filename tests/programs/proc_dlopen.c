/* Loads libproc_probes.so at run time, after the trace has started.
 *
 * Usage: proc_dlopen LIB MODE START PRE COUNT END
 *   MODE  file:    dlopen(LIB)
 *         memfd:   copy LIB into memfd_create("probes"), dlopen("/proc/self/fd/N")
 *         deleted: copy LIB to /tmp/proc_dlopen_del.XXXXXX, dlopen it, unlink it
 *   START, PRE, END: "stdin" (wait for one line on stdin) or a number of ms
 *         to sleep; START comes before the dlopen, PRE between the dlopen and
 *         the first hit, END before exit.
 *   COUNT hits of proclib:fire(i, 1000*i + 7, "dl-<i>"), 50 ms apart.
 *
 * Prints "pid P" at start, "loaded PATH" after the dlopen, "fired" after the
 * last hit.  Its own probes: proclib:loaded(mode, COUNT, PATH) right after
 * the dlopen (mode: 1 file, 2 memfd, 3 deleted; PATH the string passed to
 * dlopen), proclib:done(COUNT) after the last hit. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sdt.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void wait_for(const char *spec)
{
	if (strcmp(spec, "stdin") == 0) {
		char line[64];
		if (!fgets(line, sizeof line, stdin))
			return;
		return;
	}
	sleep_ms(atol(spec));
}

static void copy_file(const char *src, int out)
{
	char buf[65536];
	ssize_t n;
	int in = open(src, O_RDONLY);
	if (in < 0) {
		perror(src);
		exit(2);
	}
	while ((n = read(in, buf, sizeof buf)) > 0) {
		if (write(out, buf, n) != n) {
			perror("write");
			exit(2);
		}
	}
	close(in);
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr, "usage: %s LIB file|memfd|deleted START PRE COUNT END\n", argv[0]);
		return 2;
	}
	const char *lib = argv[1], *mode = argv[2];
	int count = atoi(argv[5]);
	char path[256], label[32];
	int code;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("pid %d\n", getpid());
	wait_for(argv[3]);

	if (strcmp(mode, "file") == 0) {
		snprintf(path, sizeof path, "%s", lib);
		code = 1;
	} else if (strcmp(mode, "memfd") == 0) {
		int fd = memfd_create("probes", 0);
		if (fd < 0) {
			perror("memfd_create");
			return 2;
		}
		copy_file(lib, fd);
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		code = 2;
	} else if (strcmp(mode, "deleted") == 0) {
		snprintf(path, sizeof path, "/tmp/proc_dlopen_del.XXXXXX");
		int fd = mkstemp(path);
		if (fd < 0) {
			perror("mkstemp");
			return 2;
		}
		copy_file(lib, fd);
		close(fd);
		code = 3;
	} else {
		fprintf(stderr, "bad mode %s\n", mode);
		return 2;
	}

	void *h = dlopen(path, RTLD_NOW);
	if (code == 3)
		unlink(path);
	if (!h) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 2;
	}
	void (*fire)(int, long, const char *) = (void (*)(int, long, const char *))dlsym(h, "proclib_fire");
	if (!fire) {
		fprintf(stderr, "dlsym: %s\n", dlerror());
		return 2;
	}
	DTRACE_PROBE3(proclib, loaded, code, count, path);
	printf("loaded %s\n", path);

	wait_for(argv[4]);
	for (int i = 0; i < count; i++) {
		if (i)
			sleep_ms(50);
		snprintf(label, sizeof label, "dl-%d", i);
		fire(i, 1000L * i + 7, label);
	}
	DTRACE_PROBE1(proclib, done, count);
	printf("fired\n");
	wait_for(argv[6]);
	return 0;
}
