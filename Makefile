# Every target works from a fresh clone: the virtualenv is created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The project is installed in setuptools' "strict" editable mode: a tree of links under
# build/ maps the `crashkit.*` import names onto the folders (pyproject.toml), which
# mypy and import-linter can follow. A new or removed file needs a reinstall, so the
# install also depends on the list of package files (rewritten only when it changes).
PACKAGE_DIRS := impl faults harness scenarios
FILE_LIST := build/package-files.txt
PACKAGE_FILES := $(sort $(shell find $(PACKAGE_DIRS) -type f \( -name '*.py' -o -name '*.yaml' -o -name py.typed -o -name .gitkeep \) -not -path '*/__pycache__/*' 2>/dev/null))

.PHONY: setup run test crash bench lint clean FORCE

setup: $(STAMP)

$(FILE_LIST): FORCE
	@mkdir -p build
	@echo '$(PACKAGE_FILES)' | tr ' ' '\n' > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

$(STAMP): pyproject.toml $(FILE_LIST)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
	touch $(STAMP)

# The main job: explore the default workload at every crash point, plus the
# I/O-error sweep and the fsync-failure models on it.
run: $(STAMP)
	$(BIN)/crashkit explore --sweep --models

test: $(STAMP)
	$(BIN)/pytest -n auto

# The CI crash-consistency suite, sharded over all cores (summary at the end), and the
# state machines (hypothesis profile: `make crash PROFILE=nightly` for the long run).
PROFILE ?= ci
crash: $(STAMP)
	HYPOTHESIS_PROFILE=$(PROFILE) $(BIN)/pytest -n auto -m crash tests/crash tests/machines

# Restore throughput of a 1,000,000-record state file.
bench: $(STAMP)
	$(BIN)/python benchmarks/restore_throughput.py --records 1000000

MYPY_PACKAGES := -p crashkit.regime_engine -p crashkit.orchestrator -p crashkit.faults -p crashkit.harness

lint: $(STAMP)
	$(BIN)/ruff check impl faults harness tests benchmarks
	$(BIN)/ruff format --check impl faults harness tests benchmarks
	$(BIN)/mypy $(MYPY_PACKAGES)

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache .hypothesis
