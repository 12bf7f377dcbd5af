/* SPDX-License-Identifier: MIT */
/* Reading a NUL-terminated string from the traced process. */
#ifndef PYUSDT_USDT_STR_BPF_H
#define PYUSDT_USDT_STR_BPF_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "pyusdt_abi.h"

#define PYUSDT_PAGE_SIZE 4096

/*
 * Copies the string at `src` into `dst` (at most `len` bytes, NUL included);
 * returns its length with the NUL, or a negative error.  A plain read cannot
 * fault a page in, so a string in a page the process has not touched yet (a
 * constant in .rodata) fails it.  A sleepable program (uprobes from Linux
 * 6.0) then touches each page the string can span with bpf_copy_from_user,
 * which may fault, and reads again: the same route on every kernel from 6.0,
 * where bpf_copy_from_user_str (6.12) would cover only the newest.  Kernels
 * without sleepable uprobes leave the failure to the reader (see the
 * loader's late string reads).
 */
static __always_inline long read_user_str(void *dst, __u32 len, const void *src, int sleepable)
{
	long n = bpf_probe_read_user_str(dst, len, src);
	if (n >= 0 || !sleepable)
		return n;
	char byte;
	if (bpf_copy_from_user(&byte, 1, src))
		return n;
	/* len <= PYUSDT_MAX_STR_LEN < a page: at most one more page. */
	__u64 next_page = ((__u64)src | (PYUSDT_PAGE_SIZE - 1)) + 1;
	if (next_page - (__u64)src < len)
		bpf_copy_from_user(&byte, 1, (const void *)next_page);
	return bpf_probe_read_user_str(dst, len, src);
}

#endif
