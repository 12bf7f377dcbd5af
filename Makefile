# Two commands do everything on a fresh Debian/Ubuntu machine, as root:
#   make demo   system packages, build, install into .venv, run `pyusdt demo`
#   make test   the same set-up, then the whole test suite, then check-wheel
#   make bench  the same set-up, then the benchmark suite (bench/README.md, ~18 min;
#               BENCH_ARGS=--quick for a 2-minute smoke run)
# fuzzing the ELF note reader and the argument parser (fuzz/README.md):
#   make fuzz-smoke   a 36-second run of every fuzzer and its saved regressions (make test runs it)
#   make fuzz         FUZZ_TIME seconds per fuzzer (default 600)
# and two more for the wheel:
#   make wheel        scripts/build-wheel: manylinux_2_17 wheels for CPython 3.9,
#                     3.11 and 3.13 in wheelhouse/
#   make check-wheel  scripts/check-wheel: each wheel installs and traces in a
#                     bare Debian root of its Python (bullseye, bookworm, trixie;
#                     no compiler, headers, LLVM, network)
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python

# Build: clang/bpftool compile the BPF objects; libbpf, libelf and zlib
# (Debian's source packages) are built PIC and linked statically; sys/sdt.h for
# the demo.  Tests: bpftrace as the reference peer; python3.11, PostgreSQL 15
# and OpenJDK 17 (libjvm.so, dlopened by java) as real USDT targets; pandas,
# pyarrow and matplotlib (pip, in the venv) for the data-out tests, which must
# not skip; debootstrap makes check-wheel's bare roots and build-wheel's roots
# with each Python's headers.  Fuzzing: libclang-rt-dev holds clang's
# libFuzzer and sanitizer runtimes.  Deployment: docker.io (with containerd
# and runc, which it runs containers with) for the tests that run the pyusdt
# image as the DaemonSet does (tests/test_deploy.py); prometheus for the tests
# that scrape `pyusdt serve`.
SYSTEM_PACKAGES = clang libclang-rt-dev bpftool libbpf-dev libelf-dev zlib1g-dev systemtap-sdt-dev \
                  gcc g++ make cmake pkg-config python3-venv python3-dev \
                  bpftrace python3.11 postgresql-15 openjdk-17-jdk-headless binutils util-linux \
                  debootstrap qemu-system-x86 \
                  docker.io containerd runc prometheus

.PHONY: demo test lint bench install system-packages tracefs docker wheel check-wheel clean fuzz fuzz-smoke

demo: install
	$(VENV)/bin/pyusdt demo

# The second run keeps the routes of older kernels tested on this one: the
# modules marked older_kernel_routes (the tests that attach), with perf-event
# links (PYUSDT_UPROBE_MULTI=0, as before 6.6) and plain string reads finished
# by the reader (PYUSDT_SLEEPABLE_UPROBES=0, as before 6.0).  The kernels
# themselves are proven by check-kernels.
test: lint install tracefs docker
	$(VENV)/bin/pytest tests -q -ra
	PYUSDT_UPROBE_MULTI=0 PYUSDT_SLEEPABLE_UPROBES=0 $(VENV)/bin/pytest tests -m older_kernel_routes -q -ra
	$(MAKE) fuzz-smoke
	$(MAKE) check-wheel
	./scripts/check-kernels

# ruff (pyflakes, pycodestyle, import order, bugbear) over the Python tree,
# and mypy --strict over the package (pyproject.toml); the versions are
# pinned so that a new release's rules cannot fail a build by themselves.
LINTERS = ruff==0.17.6 mypy==2.4.1
lint: $(PY)
	$(PY) -m pip install -q $(LINTERS)
	$(VENV)/bin/ruff check pyusdt tests bench scripts fuzz
	cd $(CURDIR) && $(VENV)/bin/mypy

# libFuzzer targets built with ASan and UBSan (fuzz/Makefile, apart from the
# wheel), then mutated files through the Python API; a finding fails the run
# and is saved under build/fuzz/artifacts/.
FUZZ_TIME ?= 600
fuzz-smoke: install
	./fuzz/run --time 12

fuzz: install
	./fuzz/run --time $(FUZZ_TIME)

wheel: system-packages
	PYTHON=$(PYTHON) ./scripts/build-wheel

check-wheel: wheel
	./scripts/check-wheel

bench: install tracefs
	$(PY) -m pip install -q matplotlib
	$(PY) bench/run_all.py $(BENCH_ARGS)

system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# bpftrace (the tests' reference) attaches through tracefs.
tracefs:
	@[ -e /sys/kernel/tracing/uprobe_events ] || mount -t tracefs nodev /sys/kernel/tracing

# The container tests need a docker daemon; no systemd starts one here.
docker: system-packages
	./scripts/start-docker

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q scikit-build-core pybind11 numpy pytest pandas pyarrow matplotlib

install: system-packages $(PY)
	./scripts/fetch-third-party
	$(PY) -m pip install -q --no-build-isolation .

clean:
	rm -rf build dist wheelhouse $(VENV) tests/bin
