# execbox: `make run` sets up a fresh Debian machine and serves on 127.0.0.1:8081;
# `make test` sets up and runs the whole suite.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages: the sandbox (bubblewrap), tools the tests use (procps, file), and toolchains,
# each installed only when its command is missing (a machine may have its own node, JDK...).
APT_COMMANDS := bwrap:bubblewrap ps:procps file:file go:golang-go g++:g++ gcc:gcc node:nodejs javac:default-jdk-headless rustc:rustc
# Only for `make test` (a target-specific variable reaches `system` through `setup`): the
# playground's browser tests need Debian's chromium and its driver, cluster mode's tests a
# PostgreSQL server (started by the tests themselves; `make run` needs no server).
test: APT_COMMANDS += chromium:chromium chromedriver:chromium-driver /usr/lib/postgresql/15/bin/initdb:postgresql

# The languages beyond the seed set (`make languages`; `make test` installs them): the same
# command:package pairs (a command, or a path that must exist; packages joined by commas), each
# installed only when missing.
LANGUAGES_APT := ruby:ruby php:php-cli perl:perl lua5.4:lua5.4 sqlite3:sqlite3 clang:clang tsc:node-typescript nasm:nasm tclsh:tcl pypy3:pypy3 \
  gfortran:gfortran fpc:fp-compiler ocaml:ocaml-nox ghc:ghc mcs:mono-mcs kotlinc:kotlin scala:scala \
  elixir:elixir erl:erlang-nox sbcl:sbcl gdc:gdc octave-cli:octave swipl:swi-prolog-nox cobc:gnucobol3 \
  /usr/lib/gcc/x86_64-linux-gnu/12/cc1obj:gobjc Rscript:r-base-core clojure:clojure groovy:groovy \
  gnatmake:gnat guile-3.0:guile-3.0 racket:racket nim:nim crystal:crystal \
  /usr/lib/python3/dist-packages/sklearn:python3-numpy,python3-pandas,python3-scipy,python3-sklearn,python3-matplotlib

.PHONY: run test test-vm test-vm-container setup system venv lint bench bench-languages clean docker-images docker-service docker-native docker-cluster languages

run: setup
	$(BIN)/execbox serve

test: setup languages docker-images
	$(BIN)/ruff check src tests
	$(BIN)/pytest -q

setup: system venv

system:
	@missing=""; \
	for pair in $(APT_COMMANDS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || [ -e "$${pair%%:*}" ] || missing="$$missing $$(echo $${pair##*:} | tr , ' ')"; \
	done; \
	[ -e /usr/lib/x86_64-linux-gnu/libseccomp.so.2 ] || [ -n "$$(ldconfig -p 2>/dev/null | grep libseccomp.so.2)" ] || missing="$$missing libseccomp2"; \
	$(PYTHON) -c "import ensurepip, venv" >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "execbox needs root to install:$$missing" >&2; exit 1; fi; \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing </dev/null; \
	fi

languages:
	@$(MAKE) --no-print-directory system APT_COMMANDS='$(LANGUAGES_APT)'

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The Docker backend's images, built locally (debootstrap + docker import; no registry);
# kept when already present. Skipped, with a note, where no Docker engine answers.
docker-images:
	@if docker info >/dev/null 2>&1; then docker/build-images.sh; \
	else echo "no Docker engine answers: skipping the Docker backend's images"; fi

# execbox itself as an image (for docker-compose.yml): wheels built here, installed offline.
docker-service: venv docker-images
	rm -rf docker/service/wheels
	$(BIN)/pip wheel -q -w docker/service/wheels '.[cluster]'
	docker build -q --force-rm -f docker/service/Dockerfile -t execbox:latest .

# The fresh-machine path on cgroup v2: a pristine Debian 12 VM (shared/vm; slow, software
# emulated) runs `make run` and the original endpoint's cases, then `make test`. Not in CI.
# The guest runs programs ~10 times slower than a usual host (node alone needs about the
# default 3 s of CPU to start there), so the smoke run's service gets a slow host's time limits;
# the tests stretch theirs by a measured factor. -vv (against make test's -q) names each test as
# it ends: a long run may not reach its summary.
VM ?= ../shared/vm/debian12-cgroup2.sh
VM_SMOKE_LIMITS := EXECBOX_RUN_CPU_TIME_MS=15000 EXECBOX_RUN_WALL_TIME_MS=30000 EXECBOX_COMPILE_CPU_TIME_MS=60000 EXECBOX_COMPILE_WALL_TIME_MS=120000 EXECBOX_MAX_CPU_TIME_MS=60000 EXECBOX_MAX_WALL_TIME_MS=120000
test-vm:
	VM_TIMEOUT=$${VM_TIMEOUT:-21600} VM_MEM=$${VM_MEM:-8192} VM_DISK=$${VM_DISK:-32G} \
	  $(VM) run '$(VM_SMOKE_LIMITS) bash scripts/smoke.sh && PYTEST_ADDOPTS=-vv make test'

# The native backend in a container on cgroup v2: Debian's Docker in the same kind of VM (with
# apparmor, which docker.io only recommends and Debian's kernel needs), a small image (the
# languages these tests use), then tests/test_native_container.py (procps: the tests read ps).
# Not in CI.
VM_NATIVE_IMAGE := NATIVE_BASE=execbox-debian:bookworm NATIVE_PACKAGES="python3 gcc g++ libc6-dev golang-go nodejs"
test-vm-container:
	VM_TIMEOUT=$${VM_TIMEOUT:-14400} VM_MEM=$${VM_MEM:-8192} VM_DISK=$${VM_DISK:-32G} \
	  $(VM) run 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq apparmor docker.io docker-compose debootstrap procps </dev/null && make venv && $(VM_NATIVE_IMAGE) .venv/bin/pytest -v tests/test_native_container.py'

# execbox with the native backend in a container (docker-compose.native.yml): no socket. On
# the runtime image (every language) by default; NATIVE_BASE=execbox-debian:bookworm with
# NATIVE_PACKAGES (Debian packages) makes a small one with just those toolchains.
RUNTIME_IMAGE := $(or $(EXECBOX_DOCKER_IMAGE),execbox-runtime:latest)
NATIVE_BASE ?= $(RUNTIME_IMAGE)
NATIVE_PACKAGES ?=
docker-native: venv
	@if [ "$(NATIVE_BASE)" = "$(RUNTIME_IMAGE)" ]; then $(MAKE) --no-print-directory docker-images; \
	else docker/build-images.sh --base-only; fi
	rm -rf docker/service/wheels
	$(BIN)/pip wheel -q -w docker/service/wheels '.[cluster]'
	docker build -q --force-rm -f docker/native/Dockerfile --build-arg BASE='$(NATIVE_BASE)' \
	  --build-arg PACKAGES='$(NATIVE_PACKAGES)' -t execbox-native:latest .

# The compose cluster (docker-compose.cluster.yml): both execbox images, and PostgreSQL's from
# Debian's package on the local base.
docker-cluster: docker-service docker-native
	docker build -q --force-rm -f docker/postgres/Dockerfile -t execbox-postgres:latest .

bench: setup
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python scripts/bench.py

# Only the hello world of every language, execbox beside the bare toolchain (its section of
# docs/benchmark.md); ONLY=python,go for a quick try.
bench-languages: setup
	$(BIN)/python scripts/bench.py --languages-only $(if $(ONLY),--only $(ONLY))

lint: venv
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
