# Set-up and the main jobs.  `make discover` and `make test` each build .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: venv venv-test discover test lint format clean

# The run environment: torch first (pinned, so pip takes the CPU wheel), then the package.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[train,cluster]"
	touch $@

# The test environment adds pytest and friends, and Debian's chromium for the browser test of
# `moelaw report` (installed when missing and apt-get is usable; otherwise that test skips).
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[train,cluster,test]"
	command -v chromium >/dev/null || (apt-get install -y -q chromium >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) || \
	  echo "chromium could not be installed: tests/test_report_browser.py will skip"
	touch $@

venv: $(VENV)/.installed
venv-test: $(VENV)/.installed-test

# Fit the hand-designed law and discover one on the bundled study; print both side by side.
discover: venv
	$(BIN)/moelaw discover

test: venv-test
	$(BIN)/python -m pytest -q -m "not slow"

lint: venv-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
