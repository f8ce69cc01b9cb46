# mmrqa: `make demo` and `make test` work on a fresh machine with Python >= 3.10.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU wheel; a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH_VERSION ?= 2.13.0
DEMO_DIR ?= demo
PYTEST_ARGS ?=

.PHONY: env env-test system-tools demo test clean

$(VENV)/.core-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -e '.[demo]'
	touch $@

$(VENV)/.test-installed: $(VENV)/.core-installed
	$(PIP) install --quiet --disable-pip-version-check torch==$(TORCH_VERSION)
	$(PIP) install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

env: $(VENV)/.core-installed
env-test: $(VENV)/.test-installed

demo: env
	rm -rf $(DEMO_DIR)
	@echo "== building the demo BIDS dataset (MNI152 head, Rician noise, simulated artifacts)"
	$(PY) -m mmrqa_bids.testing.demo_dataset $(DEMO_DIR)/bids
	@echo "== participant level"
	$(VENV)/bin/mmrqa $(DEMO_DIR)/bids $(DEMO_DIR)/bids/derivatives/mmrqa participant --nprocs 2 -w $(DEMO_DIR)/work
	@echo "== group level"
	$(VENV)/bin/mmrqa $(DEMO_DIR)/bids $(DEMO_DIR)/bids/derivatives/mmrqa group
	@echo
	@echo "Reports:"
	@ls $(DEMO_DIR)/bids/derivatives/mmrqa/group_*.html | sed 's/^/  group:      /'
	@ls $(DEMO_DIR)/bids/derivatives/mmrqa/sub-*.html | head -n 3 | sed 's/^/  individual: /'

# Debian's slurm-wlm and munge for the SLURM scale-out test (it skips, saying why, if apt fails).
system-tools:
	@scripts/ci/install_slurm.sh || echo "make: slurm-wlm/munge could not be installed; the SLURM test will skip"

test: env-test system-tools
	$(PY) -m pytest -n 2 --durations=15 $(PYTEST_ARGS)

clean:
	rm -rf $(DEMO_DIR) .pytest_cache build dist
