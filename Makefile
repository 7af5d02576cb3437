# Every target works from a fresh clone: the virtualenv is created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The project is installed editable in setuptools' "strict" mode, whose folder of links
# under build/ maps the `crashkit.*` import names onto the folders (pyproject.toml's
# package-dir) in a way mypy and import-linter can follow; tools/editable_links.py then
# links each package to its whole folder, so a new file needs no reinstall.

.PHONY: setup run test crash golden bench lint clean

setup: $(STAMP)

# The real-process mode (crashkit.faults.real, `crashkit explore --exec`) mounts a FUSE
# file system through libfuse 3: Debian's fuse3 is installed here when it is missing and
# this runs as root with apt; otherwise the mode says why it cannot run (exit 2) and its
# tests are skipped with that reason.
$(STAMP): pyproject.toml
	@command -v fusermount3 >/dev/null 2>&1 || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null 2>&1 \
		&& apt-get install -y -q fuse3 >/dev/null 2>&1 && echo "installed fuse3 (Debian)"; } \
		|| echo "note: no fusermount3 (Debian: fuse3): the real-process mode will say why it cannot run"
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	rm -rf build/__editable__.crashkit-*
	$(BIN)/pip install --quiet -e '.[dev,real]' --config-settings editable_mode=strict
	$(BIN)/python tools/editable_links.py
	touch $(STAMP)

# The main job: explore the default workload at every crash point, plus the
# I/O-error sweep and the fsync-failure models on it.
run: $(STAMP)
	$(BIN)/crashkit explore --sweep --models

test: $(STAMP)
	$(BIN)/pytest -n auto --dist worksteal

# The CI crash-consistency suite: the conformance kit on the reference backend (every
# item of `--crashkit-suite`, sharded over all cores, one summary table at the end), its
# self-test (every shipped broken variant caught, in-process and, with --crashkit-real,
# as real processes on a FUSE mount), the real mode's references on those workloads, the
# machines' shrink-and-export tests of those variants, and the kit run on an outside
# backend with several defects;
# then the kit on the SQLite backend (`SQLITE_SUITE`: quick, under a minute on 2 cores;
# its ci suite passes too, in about 20 minutes), and on the reference declared with
# compaction at every start that finds more than two lines per symbol (`COMPACTING_SUITE`:
# quick; what a backend that rewrites its file meets: 0 false failures).
# `make crash SUITE=nightly PROFILE=nightly SQLITE_SUITE=ci COMPACTING_SUITE=ci` for the long run.
SUITE ?= ci
PROFILE ?= ci
SQLITE_SUITE ?= quick
COMPACTING_SUITE ?= quick
REFERENCE := crashkit.orchestrator.store.jsonl:BACKEND
SQLITE := crashkit.orchestrator.store.sqlite:BACKEND
COMPACTING := crashkit.orchestrator.store.jsonl:COMPACTING_BACKEND
crash: $(STAMP)
	HYPOTHESIS_PROFILE=$(PROFILE) $(BIN)/pytest -n auto --dist worksteal -m "crashkit or crash" \
		--crashkit-backend=$(REFERENCE) --crashkit-suite=$(SUITE) --crashkit-selftest --crashkit-real \
		tests/machines tests/kit
	rm -rf .pytest_cache/crashkit-findings-sqlite
	HYPOTHESIS_PROFILE=$(PROFILE) $(BIN)/pytest -n auto --dist worksteal -m crashkit \
		--crashkit-backend=$(SQLITE) --crashkit-suite=$(SQLITE_SUITE) \
		--crashkit-findings=.pytest_cache/crashkit-findings-sqlite tests/kit
	rm -rf .pytest_cache/crashkit-findings-compacting
	HYPOTHESIS_PROFILE=$(PROFILE) $(BIN)/pytest -n auto --dist worksteal -m crashkit \
		--crashkit-backend=$(COMPACTING) --crashkit-suite=$(COMPACTING_SUITE) \
		--crashkit-findings=.pytest_cache/crashkit-findings-compacting tests/kit

# The ci explorer suite's verdicts, job by job, equal to tests/harness/golden (a speed-up
# of the explorer or the fault layer must leave them so; CI runs it after `make crash`).
# Regenerate on purpose only: `.venv/bin/python -m tests.harness.golden_verdicts`.
golden: $(STAMP)
	$(BIN)/pytest -n auto --dist worksteal -m crash tests/harness/test_golden_verdicts.py

# Every performance figure beside its baseline, measured in the same run, its ratio and
# its goal, as one table (README, "Benchmarks"). `make bench BENCH="--only restore"` runs
# one figure, `BENCH=--quick` a smoke run.
BENCH ?=
bench: $(STAMP)
	$(BIN)/python benchmarks/suite.py $(BENCH)

MYPY_PACKAGES := -p crashkit.regime_engine -p crashkit.orchestrator -p crashkit.faults -p crashkit.harness

lint: $(STAMP)
	$(BIN)/ruff check impl faults harness tests benchmarks tools
	$(BIN)/ruff format --check impl faults harness tests benchmarks tools
	$(BIN)/mypy $(MYPY_PACKAGES)
	$(BIN)/mypy benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache .hypothesis
