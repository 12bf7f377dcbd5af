// SPDX-License-Identifier: GPL-2.0
/*
 * Loader of floor.bpf.c (bench only): runs a command with one of its
 * programs attached as a uprobe at one address of one file, the way
 * `bpftrace -c` and pyusdt's attach_command do it (the command is held
 * between fork and exec until the probe is attached, the probe filtered to
 * its pid).
 *
 *   floor empty LINK BINARY OFFSET -- COMMAND [ARGS...]
 *   floor ring  LINK BINARY OFFSET RECORD_BYTES RING_BYTES -- COMMAND [ARGS...]
 *
 * LINK is "multi" (a uprobe_multi link, Linux 6.6+, as pyusdt attaches
 * where it can) or "perf" (a perf-event uprobe, libbpf's own attach, as
 * older kernels and bpftrace 0.17 do): the kernel runs the program through
 * different paths, which cost differently per hit.
 *
 * OFFSET is the probe site's file offset (bench/floor.py reads it from the
 * USDT note).  In ring mode a reader consumes the ring buffer in this
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

/* A uprobe_multi link of `prog` at one offset of `binary`, for `pid` only;
 * its fd, or -1 with errno set. */
static int link_uprobe_multi(const struct bpf_program *prog, const char *binary, size_t offset, pid_t pid)
{
	struct link_create_uprobe_multi attr;
	__u64 off = offset;

	memset(&attr, 0, sizeof(attr));
	attr.prog_fd = bpf_program__fd(prog);
	attr.attach_type = ATTACH_UPROBE_MULTI;
	attr.path = (__u64)(unsigned long)binary;
	attr.offsets = (__u64)(unsigned long)&off;
	attr.cnt = 1;
	attr.pid = pid;
	return syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
}

static int usage(void)
{
	fprintf(stderr, "usage: floor empty LINK BINARY OFFSET -- COMMAND [ARGS...]\n"
			"       floor ring  LINK BINARY OFFSET RECORD_BYTES RING_BYTES -- COMMAND [ARGS...]\n"
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
	int ring_mode, multi, cmd, go, status = 0, link_fd = -1;
	unsigned long long consumed = 0;
	struct ring_buffer *rb = NULL;
	struct bpf_link *link = NULL;
	struct bpf_program *prog;
	struct floor_bpf *skel;
	const char *binary;
	size_t offset;
	pid_t pid;

	if (argc < 6)
		return usage();
	ring_mode = !strcmp(argv[1], "ring");
	multi = !strcmp(argv[2], "multi");
	if ((!ring_mode && strcmp(argv[1], "empty")) || (!multi && strcmp(argv[2], "perf")))
		return usage();
	argv++;
	argc--;
	cmd = ring_mode ? 7 : 5;
	if (argc <= cmd || strcmp(argv[cmd - 1], "--"))
		return usage();
	binary = argv[2];
	offset = strtoull(argv[3], NULL, 0);

	skel = floor_bpf__open();
	if (!skel) {
		perror("floor: open");
		return 1;
	}
	if (ring_mode) {
		skel->rodata->record_bytes = strtoul(argv[4], NULL, 0);
		bpf_map__set_max_entries(skel->maps.ring, strtoul(argv[5], NULL, 0));
		bpf_program__set_autoload(skel->progs.empty, false);
		prog = skel->progs.ring_only;
	} else {
		bpf_program__set_autoload(skel->progs.ring_only, false);
		prog = skel->progs.empty;
	}
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
		link_fd = link_uprobe_multi(prog, binary, offset, pid);
	else
		link = bpf_program__attach_uprobe(prog, false, pid, binary, offset);
	if (multi ? link_fd < 0 : !link) {
		fprintf(stderr, "floor: attach to %s+0x%zx failed: %s\n", binary, offset, strerror(errno));
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
