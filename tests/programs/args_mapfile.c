/* Maps a new file while being traced.  Prints "ready", then for each line
 * read from stdin maps FILE (read-only, kept mapped), fires
 * mapfile:mapped(path, line number) and answers "mapped N".  Exits on EOF.
 * Usage: args_mapfile FILE */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/sdt.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char line[64];
	long n = 0;
	if (argc < 2)
		return 2;
	const char *path = argv[1];
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	while (fgets(line, sizeof line, stdin)) {
		int fd = open(path, O_RDONLY);
		if (fd < 0 || mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED)
			return 3;
		close(fd);
		n++;
		DTRACE_PROBE2(mapfile, mapped, path, n);
		printf("mapped %ld\n", n);
	}
	return 0;
}
