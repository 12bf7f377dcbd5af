// SPDX-License-Identifier: GPL-2.0
/*
 * Loader of floor.bpf.c (bench only): runs a command with one of its
 * programs attached as a uprobe at one address of one file, the way
 * `bpftrace -c` and pyusdt's attach_command do it (the command is held
 * between fork and exec until the probe is attached, the probe filtered to
 * its pid).
 *
 *   floor empty   LINK BINARY OFFSET -- COMMAND [ARGS...]
 *   floor ring    LINK BINARY OFFSET RECORD_BYTES RING_BYTES -- COMMAND [ARGS...]
 *   floor ring-ts LINK BINARY OFFSET RECORD_BYTES RING_BYTES -- COMMAND [ARGS...]
 *   floor strings multi BINARY SITES RECORD_BYTES RING_BYTES STRINGS_AT STR_LEN COOKIES
 *                 -- COMMAND [ARGS...]
 *   floor strings-ts ... (as strings)
 *
 * ring-ts and strings-ts are ring and strings with each record stamped with
 * the time of its hit (bpf_ktime_get_ns).
 *
 * LINK is "multi" (a uprobe_multi link, Linux 6.6+, as pyusdt attaches
 * where it can) or "perf" (a perf-event uprobe, libbpf's own attach, as
 * older kernels and bpftrace 0.17 do): the kernel runs the program through
 * different paths, which cost differently per hit.
 *
 * OFFSET is the probe site's file offset (bench/floor.py reads it from the
 * USDT note).  strings mode attaches at several sites, SITES and COOKIES
 * comma-separated and in the same order, through one uprobe_multi link; a
 * site is OFFSET/SEMAPHORE, the file offsets of the probe and of its
 * semaphore (0: none; the kernel counts it up while attached).  A
 * site's COOKIE names the registers of its two string arguments, REG+REG
 * (x86-64 names without %, "r14+rax"): its attach cookie is their offsets in
 * struct pt_regs (floor.bpf.c).  In ring and strings modes a reader consumes the ring buffer in this
 * process's main thread every millisecond and, at the end, prints
 * "consumed=N dropped=M" on stdout.  Exits with the command's status.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <stddef.h>
#include <asm/ptrace.h>
#include <linux/bpf.h>
#include <bpf/libbpf.h>
#include "floor.skel.h"

/* How long the reader sleeps between two drains: short enough that a
 * 16 MiB ring never fills at the rates a uprobe allows (~1-2 M/s). */
#define POLL_NS 1000000L

static int consume_one(void *ctx, void *data, size_t size)
{
	(void)size;
	*(unsigned long long *)ctx += *(const unsigned long long *)data;
	return 0;
}

/* BPF_TRACE_UPROBE_MULTI of enum bpf_attach_type: Debian 12's headers and
 * libbpf 1.1 predate it. */
#define ATTACH_UPROBE_MULTI 48

/* union bpf_attr as BPF_LINK_CREATE reads it for a uprobe_multi link
 * (include/uapi/linux/bpf.h, Linux 6.6+), spelled out for the same reason. */
struct link_create_uprobe_multi {
	__u32 prog_fd;
	__u32 target_fd;
	__u32 attach_type;
	__u32 flags;
	__u64 path;
	__u64 offsets;
	__u64 ref_ctr_offsets;
	__u64 cookies;
	__u32 cnt;
	__u32 multi_flags;
	__u32 pid;
};

#define MAX_SITES 16

/* A uprobe_multi link of `prog` at `cnt` offsets of `binary` (with their
 * cookies, or none), for `pid` only; its fd, or -1 with errno set. */
static int link_uprobe_multi(const struct bpf_program *prog, const char *binary, const __u64 *offsets,
			     const __u64 *ref_ctrs, const __u64 *cookies, __u32 cnt, pid_t pid)
{
	struct link_create_uprobe_multi attr;

	memset(&attr, 0, sizeof(attr));
	attr.prog_fd = bpf_program__fd(prog);
	attr.attach_type = ATTACH_UPROBE_MULTI;
	attr.path = (__u64)(unsigned long)binary;
	attr.offsets = (__u64)(unsigned long)offsets;
	attr.ref_ctr_offsets = (__u64)(unsigned long)ref_ctrs;
	attr.cookies = (__u64)(unsigned long)cookies;
	attr.cnt = cnt;
	attr.pid = pid;
	return syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
}

/* The offset in struct pt_regs of the x86-64 register `name` (len bytes of
 * it), or -1. */
static long reg_offset(const char *name, size_t len)
{
	static const struct { const char *name; size_t off; } regs[] = {
		{ "rax", offsetof(struct pt_regs, rax) }, { "rbx", offsetof(struct pt_regs, rbx) },
		{ "rcx", offsetof(struct pt_regs, rcx) }, { "rdx", offsetof(struct pt_regs, rdx) },
		{ "rsi", offsetof(struct pt_regs, rsi) }, { "rdi", offsetof(struct pt_regs, rdi) },
		{ "rbp", offsetof(struct pt_regs, rbp) }, { "r8", offsetof(struct pt_regs, r8) },
		{ "r9", offsetof(struct pt_regs, r9) }, { "r10", offsetof(struct pt_regs, r10) },
		{ "r11", offsetof(struct pt_regs, r11) }, { "r12", offsetof(struct pt_regs, r12) },
		{ "r13", offsetof(struct pt_regs, r13) }, { "r14", offsetof(struct pt_regs, r14) },
		{ "r15", offsetof(struct pt_regs, r15) },
	};

	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++)
		if (strlen(regs[i].name) == len && !strncmp(regs[i].name, name, len))
			return (long)regs[i].off;
	return -1;
}

/* Parses SITES, "OFFSET/SEMAPHORE,..." (at most MAX_SITES); the count, or 0. */
static __u32 parse_sites(const char *text, __u64 *offsets, __u64 *semaphores)
{
	__u32 n = 0;
	char *end;

	while (n < MAX_SITES) {
		offsets[n] = strtoull(text, &end, 0);
		if (*end != '/')
			return 0;
		semaphores[n++] = strtoull(end + 1, &end, 0);
		if (*end != ',')
			return *end ? 0 : n;
		text = end + 1;
	}
	return 0;
}

/* Parses COOKIES, "REG+REG,..." (at most MAX_SITES), into attach cookies:
 * the two registers' pt_regs offsets, the second in bits 16-31.  The
 * count, or 0. */
static __u32 parse_cookies(const char *text, __u64 *cookies)
{
	__u32 n = 0;

	while (n < MAX_SITES) {
		const char *plus = strchr(text, '+');
		const char *end;
		long a, b;

		if (!plus)
			return 0;
		end = plus + 1 + strcspn(plus + 1, ",");
		a = reg_offset(text, plus - text);
		b = reg_offset(plus + 1, end - plus - 1);
		if (a < 0 || b < 0)
			return 0;
		cookies[n++] = (__u64)a | (__u64)b << 16;
		if (*end != ',')
			return n;
		text = end + 1;
	}
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: floor empty   LINK BINARY OFFSET -- COMMAND [ARGS...]\n"
			"       floor ring    LINK BINARY OFFSET RECORD_BYTES RING_BYTES -- COMMAND [ARGS...]\n"
			"       floor ring-ts LINK BINARY OFFSET RECORD_BYTES RING_BYTES -- COMMAND [ARGS...]\n"
			"       floor strings multi BINARY SITES RECORD_BYTES RING_BYTES STRINGS_AT STR_LEN COOKIES"
			" -- COMMAND [ARGS...]\n"
			"       floor strings-ts (as strings)\n"
			"LINK: multi or perf\n");
	return 2;
}

/* The command, held before exec until the parent writes to `go`. */
static pid_t spawn_held(char **argv, int *go)
{
	int fds[2];
	char c;
	pid_t pid;

	if (pipe(fds))
		return -1;
	pid = fork();
	if (pid == 0) {
		close(fds[1]);
		if (read(fds[0], &c, 1) != 1)
			_exit(127);
		close(fds[0]);
		execvp(argv[0], argv);
		perror(argv[0]);
		_exit(127);
	}
	close(fds[0]);
	*go = fds[1];
	return pid;
}

int main(int argc, char **argv)
{
	int ring_mode, stamp_mode, strings_mode, multi, cmd, go, status = 0, link_fd = -1;
	__u64 offsets[MAX_SITES], ref_ctrs[MAX_SITES], cookies[MAX_SITES];
	__u32 sites = 1;
	unsigned long long consumed = 0;
	struct ring_buffer *rb = NULL;
	struct bpf_link *link = NULL;
	struct bpf_program *prog;
	struct floor_bpf *skel;
	const char *binary;
	pid_t pid;

	if (argc < 6)
		return usage();
	stamp_mode = !strcmp(argv[1], "ring-ts") || !strcmp(argv[1], "strings-ts");
	strings_mode = !strcmp(argv[1], "strings") || !strcmp(argv[1], "strings-ts");
	ring_mode = strings_mode || stamp_mode || !strcmp(argv[1], "ring");
	multi = !strcmp(argv[2], "multi");
	if ((!ring_mode && strcmp(argv[1], "empty")) || (!multi && strcmp(argv[2], "perf")) ||
	    (strings_mode && !multi))
		return usage();
	argv++;
	argc--;
	cmd = strings_mode ? 10 : ring_mode ? 7 : 5;
	if (argc <= cmd || strcmp(argv[cmd - 1], "--"))
		return usage();
	binary = argv[2];
	if (strings_mode) {
		sites = parse_sites(argv[3], offsets, ref_ctrs);
		if (!sites || parse_cookies(argv[8], cookies) != sites)
			return usage();
	} else {
		offsets[0] = strtoull(argv[3], NULL, 0);
	}

	skel = floor_bpf__open();
	if (!skel) {
		perror("floor: open");
		return 1;
	}
	bpf_program__set_autoload(skel->progs.empty, false);
	bpf_program__set_autoload(skel->progs.ring_only, false);
	bpf_program__set_autoload(skel->progs.strings, false);
	if (ring_mode) {
		skel->rodata->record_bytes = strtoul(argv[4], NULL, 0);
		bpf_map__set_max_entries(skel->maps.ring, strtoul(argv[5], NULL, 0));
		skel->rodata->stamp = stamp_mode;
	}
	if (strings_mode) {
		skel->rodata->strings_at = strtoul(argv[6], NULL, 0);
		skel->rodata->str_len = strtoul(argv[7], NULL, 0);
		prog = skel->progs.strings;
	} else {
		prog = ring_mode ? skel->progs.ring_only : skel->progs.empty;
	}
	bpf_program__set_autoload(prog, true);
	if (multi)
		bpf_program__set_expected_attach_type(prog, ATTACH_UPROBE_MULTI);
	if (floor_bpf__load(skel)) {
		fprintf(stderr, "floor: load failed: %s\n", strerror(errno));
		floor_bpf__destroy(skel);
		return 1;
	}
	pid = spawn_held(argv + cmd, &go);
	if (pid < 0) {
		perror("floor: fork");
		return 1;
	}
	if (multi)
		link_fd = link_uprobe_multi(prog, binary, offsets, strings_mode ? ref_ctrs : NULL,
					    strings_mode ? cookies : NULL, sites, pid);
	else
		link = bpf_program__attach_uprobe(prog, false, pid, binary, offsets[0]);
	if (multi ? link_fd < 0 : !link) {
		fprintf(stderr, "floor: attach to %s+0x%llx failed: %s\n", binary, (unsigned long long)offsets[0],
			strerror(errno));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		floor_bpf__destroy(skel);
		return 1;
	}
	if (ring_mode)
		rb = ring_buffer__new(bpf_map__fd(skel->maps.ring), consume_one, &consumed, NULL);
	if (write(go, "g", 1) != 1)
		perror("floor: release");
	close(go);
	for (;;) {
		struct timespec pause = { 0, POLL_NS };
		pid_t done = waitpid(pid, &status, rb ? WNOHANG : 0);

		if (rb)
			ring_buffer__consume(rb);
		if (done == pid || (done < 0 && errno != EINTR))
			break;
		nanosleep(&pause, NULL);
	}
	if (multi)
		close(link_fd);
	else
		bpf_link__destroy(link);
	if (rb) {
		ring_buffer__consume(rb);
		printf("consumed=%llu dropped=%llu\n", consumed, (unsigned long long)skel->bss->dropped);
		ring_buffer__free(rb);
	}
	floor_bpf__destroy(skel);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
