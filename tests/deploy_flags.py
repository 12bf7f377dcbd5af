"""The docker run flags of deploy/docker-run-flags: the DaemonSet's pod as
a docker run, which tests/test_deploy.py runs the image with, exactly."""
from __future__ import annotations

from containers import REPO

RUN_FLAGS = REPO / "deploy" / "docker-run-flags"


def file_flags() -> list[str]:
    """deploy/docker-run-flags: one flag a line, '#' lines are comments."""
    return [line.strip() for line in RUN_FLAGS.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
