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

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[train,cluster,test]"
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
