/* scripts/check-kernels: strings, one of them in a page this process never
 * touched.  kc:str(i, s) fires for "", "plain" and a UTF-8 string, copied to
 * the heap first (warm: their pages are mapped), then
 * kc:cold(3, s) with s the address of kCold.text, which nothing ever reads.
 * Cold by layout: the text starts a 2 MiB-aligned block of the file and of
 * the address space that holds nothing else, with 2 MiB of padding before it
 * (never read either), so neither fault-around (64 KiB windows) nor a page
 * cache holding the file in large folios (at most 2 MiB, naturally aligned)
 * maps it along with a page the process does touch.  And before firing, the
 * program drops whatever mapping of the block there is (madvise
 * MADV_DONTNEED removes page table entries, reads nothing), then prints
 * "cold-present N" from /proc/self/pagemap (N = 1: mapped in this process),
 * and again after the probe.
 * Usage: kc_strings */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sdt.h>
#include <unistd.h>

#define BLOCK (2 * 1024 * 1024)
#define COLD_TEXT "a string in a page this process never touched"

struct cold_pages {
	char before[BLOCK];
	char text[4096];
	char after[BLOCK - 4096];
};

/* Non-zero padding, so the section is file-backed like .rodata. */
__attribute__((section(".kc_cold"), aligned(BLOCK), used))
const struct cold_pages kCold = {
	.before = {[0 ... BLOCK - 1] = 'b'},
	.text = COLD_TEXT,
	.after = {[0 ... BLOCK - 4096 - 1] = 'a'},
};

static int present(const void *addr)
{
	uint64_t entry = 0;
	long page = sysconf(_SC_PAGESIZE);
	int fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0)
		return -1;
	off_t off = (off_t)((uintptr_t)addr / (uintptr_t)page) * 8;
	ssize_t n = pread(fd, &entry, sizeof entry, off);
	close(fd);
	return n == sizeof entry ? (int)(entry >> 63) : -1;
}

int main(void)
{
	static const char *const warm[] = {"", "plain", "h\xc3\xa9llo \xe2\x9c\x93"};
	const char *cold = kCold.text; /* its address only: never dereferenced */

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (madvise((void *)kCold.text, BLOCK, MADV_DONTNEED) != 0)
		perror("madvise");
	for (long i = 0; i < 3; i++) {
		char *s = strdup(warm[i]);
		DTRACE_PROBE2(kc, str, i, s);
		free(s);
	}
	printf("cold-present %d\n", present(cold));
	DTRACE_PROBE2(kc, cold, 3L, cold);
	printf("cold-present %d\n", present(cold));
	return 0;
}
