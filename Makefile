# Entry points, each bootstrapping .venv from nothing with the locked environment.
# requirements.lock pins every package of the environment (runtime + test extras) with hashes;
# `make lock` regenerates it with uv (README, "Development").
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements.lock
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | sha1sum | cut -c1-12)

.PHONY: demo test lock check-env

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "mmzoo: installing the locked environment ($(LOCK)) into $(VENV); the first run downloads torch (a few minutes)"
	$(PY) -m pip install --require-hashes -r $(LOCK) | { grep --line-buffered -E "^(Collecting|Installing|Successfully)" || true; }
	$(PY) -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# One clear line if a native extension (torchaudio, torchvision ops, PyAV) does not load.
check-env: $(STAMP)
	$(PY) -m mmzoo.envcheck

demo: check-env
	$(VENV)/bin/mmzoo demo

test: check-env
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(PY) -m pytest -n 2 --dist loadfile -q

# Re-resolve the whole environment (after editing dependencies in pyproject.toml).
lock:
	test -x .venv-lock/bin/uv || ($(PYTHON) -m venv .venv-lock && .venv-lock/bin/python -m pip install -q uv==$(UV_VERSION))
	.venv-lock/bin/uv pip compile pyproject.toml --extra test --generate-hashes \
	    --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	    --custom-compile-command "make lock" -o $(LOCK)
