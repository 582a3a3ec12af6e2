# Two commands on a fresh machine:
#   make data   -- set up .venv and regenerate the El-UNet brain-slice phantoms (the main job)
#   make test   -- set up .venv and run the tests
PY ?= python3.12
VENV := .venv
BIN := $(VENV)/bin
DATA ?= data

.PHONY: data test test-all setup bench clean

$(BIN)/phantombench: pyproject.toml
	@test -x $(BIN)/python || (command -v $(PY) >/dev/null 2>&1 && $(PY) -m venv $(VENV)) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[peers,test]"
	@touch $@

setup: $(BIN)/phantombench

data: setup
	$(BIN)/phantombench generate brain-slice --preset elunet-soft  --n 1 --out $(DATA)/brain-slice/elunet-soft/v1
	$(BIN)/phantombench generate brain-slice --preset elunet-stiff --n 1 --out $(DATA)/brain-slice/elunet-stiff/v1
	$(BIN)/phantombench generate brain-slice --preset elunet-noisy --n 1 --out $(DATA)/brain-slice/elunet-noisy/v1
	$(BIN)/phantombench generate brain-slice --preset random --n 20 --out $(DATA)/brain-slice/random/v1
	$(BIN)/phantombench verify $(DATA)/brain-slice/elunet-soft/v1 --regenerate 1

test: setup
	$(BIN)/python -m pytest -q -m "not slow"

test-all: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python scripts/bench_all.py

clean:
	rm -rf $(DATA) .pytest_cache
