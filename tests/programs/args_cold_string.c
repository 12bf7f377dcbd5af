/* A string argument in a page the process has never touched: a constant in
 * its own 2 MiB-aligned block of .rodata, between blocks of padding nothing
 * reads, so neither fault-around nor a large page cache folio maps it.  The
 * program passes only its address to the probe, twice (the second hit shows
 * whether the first read faulted the page in for the process), then waits
 * for its stdin to close, so a reader that reads late finds it alive.
 * Usage: args_cold_string */
#include <stdio.h>
#include <sys/mman.h>
#include <sys/sdt.h>
#include <unistd.h>

#define BLOCK (2L << 20)
#define COLD_TEXT "a constant in a page this process never touched"

struct cold_block {
	char before[BLOCK];
	char text[4096];
	char after[BLOCK - 4096];
};

__attribute__((section(".rodata.cold"), aligned(BLOCK), used))
const struct cold_block kCold = {
	.before = {[0 ... BLOCK - 1] = 'b'},
	.text = COLD_TEXT,
	.after = {[0 ... BLOCK - 4096 - 1] = 'a'},
};

int main(void)
{
	const char *cold = kCold.text; /* its address only: never dereferenced here */
	/* Drop whatever the loader mapped of the text's page (a read-only private
	 * file mapping: the bytes stay in the file, the page table entry goes).
	 * Only that page: past the block lies the writable data segment. */
	madvise((void *)cold, sizeof(kCold.text), MADV_DONTNEED);
	for (long i = 0; i < 2; i++)
		DTRACE_PROBE2(cold, text, i, cold);
	char c;
	while (read(0, &c, 1) > 0)
		;
	return 0;
}
