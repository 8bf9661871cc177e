# Two commands for a new user: `make quickstart` and `make test`.
# Both create .venv when missing and install r1kit into it. On a machine
# without a CUDA GPU the CPU build of torch is installed first, so that pip
# does not pull a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: quickstart test test-slow lint setup clean

$(BIN)/r1kit: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi >/dev/null 2>&1; then \
		$(BIN)/python -m pip install -q "torch==2.13.0" \
		|| $(BIN)/python -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu; \
	fi
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(BIN)/r1kit

setup: $(BIN)/r1kit

quickstart: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" bash recipes/quickstart.sh

# lint first: ruff's rules and format (pyproject.toml [tool.ruff]); a failure stops before pytest
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) runs
