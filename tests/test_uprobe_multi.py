"""uprobe_multi links (Linux 6.6+): one link per (file, process, program),
and a link the kernel refuses retried one site at a time so that the
failure names its probe while every other site is still traced.

The rest of the suite traces through these links too (they are the default
where the kernel has them); tests/test_detach.py runs its exception test
with perf-event links as well.
"""
from __future__ import annotations

import errno
import os

import pytest

from pyusdt import Tracer, _native

from proc_helpers import bpf_links, linked_sites


@pytest.fixture(scope="module")
def multisite(build):
    return build("args_multisite.c", "args_multisite")


def test_one_link_per_file_and_program(bpf, multisite):
    """multisite:hit has three sites and multisite:done one: one link holds all
    four (and one more the dynamic linker's site), with the semaphore-less sites' cookies, and the counts are exact."""
    before = {lk["link_id"] for lk in bpf_links(os.getpid())}
    with Tracer(uprobe_multi=True) as t:  # whatever PYUSDT_UPROBE_MULTI says
        t.attach_command([str(multisite), "100"], "multisite:*")
        t.start()
        assert t._session.uprobe_multi
        ours = [lk for lk in bpf_links(os.getpid()) if lk["link_id"] not in before]
        # ... and one for the dynamic linker's site (objects loaded later).
        loader = os.path.realpath("/lib64/ld-linux-x86-64.so.2")
        assert sorted((lk["link_type"], lk["uprobe_cnt"], os.path.realpath(lk["path"])) for lk in ours) == sorted([
            ("uprobe_multi", "4", str(multisite)), ("uprobe_multi", "1", loader)])
        assert t.attached_sites == 4
        counts: dict = {}
        for batch in t.batches():
            for e in batch:
                counts[e.probe.fullname] = counts.get(e.probe.fullname, 0) + 1
    assert counts == {"multisite:hit": 300, "multisite:done": 1}
    assert {lk["link_id"] for lk in bpf_links(os.getpid())} == before


def test_refused_site_is_named_and_the_others_linked(bpf, multisite):
    """A site the kernel refuses (here an offset past the end of the file: a
    python3.11 site applied to the small program) fails the group's link;
    commit() then links the sites one by one: the bad one comes back with its
    probe's name and errno, the four good ones are attached."""
    good, _ = _native.read_sites(str(multisite))
    py_sites, _ = _native.read_sites("/usr/bin/python3.11")
    bad = max(py_sites, key=lambda s: s.pc_offset)
    assert bad.pc_offset > os.path.getsize(multisite)
    s = _native.Session(_native.SessionOptions())
    try:
        assert s.uprobe_multi
        for site in good[:2] + [bad] + good[2:]:
            s.attach(str(multisite), site, 0, [], -1, False, None)
        assert s.attached_sites == 0  # queued until commit
        failures = s.commit()
        assert failures == [(errno.EINVAL, f"python:{bad.name} in {multisite}: attach failed: "
                             f"{os.strerror(errno.EINVAL)}")]
        assert s.attached_sites == len(good) == 4
        assert linked_sites(os.getpid()) == 4
        assert s.commit() == []  # nothing left pending
    finally:
        s.close()
    assert linked_sites(os.getpid()) == 0


def test_environment_forces_perf_event_links(bpf, multisite, monkeypatch):
    """PYUSDT_UPROBE_MULTI=0 (how `make test` runs the attaching tests a
    second time) gives one perf-event link per site, as kernels before 6.6."""
    monkeypatch.setenv("PYUSDT_UPROBE_MULTI", "0")
    before = {lk["link_id"] for lk in bpf_links(os.getpid())}
    with Tracer() as t:
        t.attach_path(multisite, "multisite:*")
        t.start()
        assert not t._session.uprobe_multi
        ours = [lk for lk in bpf_links(os.getpid()) if lk["link_id"] not in before]
        assert sorted(lk["link_type"] for lk in ours) == ["perf"] * 4
        assert t.attached_sites == 4
    monkeypatch.setenv("PYUSDT_UPROBE_MULTI", "1")
    assert Tracer().uprobe_multi and not Tracer(uprobe_multi=False).uprobe_multi
