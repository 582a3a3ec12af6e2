# Two commands on a fresh machine (each creates .venv with Python 3.12 when missing):
#   make run    -- regenerate the official phantoms (El-UNet brain slices, liver MRE, EIT), evaluate the
#                  classical baselines on them and render the leaderboard (the main job)
#   make test   -- run the tests (fast set; `make test-all` adds the slow ones)
PY ?= python3.12
VENV := .venv
BIN := $(VENV)/bin
DATA ?= data
# task:solver pairs the main job evaluates (classical baselines and the trivial reference)
BASELINES ?= brain-elasticity:constant brain-elasticity:direct-elasticity \
             mre:constant mre:ahi mre:mdev \
             eit:constant eit:noser eit:tikhonov eit:tv

.PHONY: run data brain test test-all setup bench leaderboard clean

$(BIN)/phantombench: pyproject.toml
	@test -x $(BIN)/python || (command -v $(PY) >/dev/null 2>&1 && $(PY) -m venv $(VENV)) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[peers,test]"
	@touch $@

setup: $(BIN)/phantombench

# the El-UNet brain-slice phantoms alone (elunet-soft/stiff/noisy and the random training set)
brain: setup
	$(BIN)/phantombench official --task brain-elasticity --generate --root $(DATA)
	$(BIN)/phantombench verify $(DATA)/brain-slice/elunet-soft/v1 --regenerate 1

data: setup
	$(BIN)/phantombench official --generate --root $(DATA)

run: data
	@set -e; for tb in $(BASELINES); do \
	  echo "== submit $${tb#*:} on $${tb%%:*}"; \
	  $(BIN)/phantombench submit $${tb#*:} --task $${tb%%:*} --data $(DATA); \
	done
	$(BIN)/phantombench leaderboard

leaderboard: setup
	$(BIN)/phantombench leaderboard --check

test: setup
	$(BIN)/python -m pytest -q -m "not slow"

test-all: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python scripts/bench_all.py

clean:
	rm -rf $(DATA) results .pytest_cache
