# Two commands on a fresh machine (each creates .venv with Python 3.12 when missing):
#   make run    -- regenerate the official phantoms (El-UNet brain slices, liver MRE, EIT), evaluate the
#                  classical baselines on them and render the leaderboard (the main job)
#   make test   -- run the tests (fast set; `make test-all` adds the slow ones)
PY ?= python3.12
VENV := .venv
BIN := $(VENV)/bin
DATA ?= data
# task:solver pairs the main job evaluates (classical baselines and the trivial reference), in two lanes that run
# side by side on the two cores: elastix (about 4 s per registration pair, 100 pairs) beside all the others
BASELINES ?= brain-elasticity:constant brain-elasticity:direct-elasticity \
             mre:constant mre:ahi mre:mdev \
             eit:constant eit:noser eit:tikhonov eit:tv \
             registration:identity
BASELINES_SLOW ?= registration:elastix

# the learned solvers' leaderboard records (hours of CPU on 2 cores; not part of `make run`): per-sample training
# budgets in CPU seconds for the per-case models, and phantoms generated from seed 1 (the training-data policy)
# for DIME and CNN-PINN
LEARNED ?= "elunet-ps-w1 --task brain-elasticity --param train_time_s=60 --param clock=cpu --param threads=1" \
           "pinn-elasticity --task brain-elasticity --param train_time_s=60 --param clock=cpu --param threads=1" \
           "dime-cnn --task mre --preset dime-liver --train-n 60 --train-seed 1 --param steps=1500 --param augment=false --param progress=false" \
           "cnn-pinn --task eit --train-n 300 --train-seed 1 --param stage1_epochs=40 --param epochs=200 --param progress=false"

# the learned registration rows (P4/P5 models at the board budget: narrow networks, 300 Adam steps on the official
# 200 training pairs; about 45 min of CPU on 2 cores; not part of `make run`)
REG_NARROW := --param enc=[8,16,16,16] --param dec=[16,16,16,16,16,8,8] --param lr=0.001 --param steps=300 \
              --param val_every=100 --param progress=false
REG_ATTN := --param channels=[8,16,32,64] --param steps=300 --param val_every=100 --param progress=false
LEARNED_REG ?= "voxelmorph-diffusion $(REG_NARROW)" "hypermorph-elastic $(REG_NARROW)" \
               "hypermorph-diffusion $(REG_NARROW)" "kheil-diffusion $(REG_ATTN)" "kheil-jacobian $(REG_ATTN)" \
               "kheil-rigidity $(REG_ATTN)" "kheil-sliding $(REG_ATTN)"

.PHONY: run lane-fast lane-slow data brain learned learned-registration reproduce test test-all setup bench leaderboard clean lock

$(BIN)/phantombench: pyproject.toml constraints.txt
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null 2>&1; }; }; } || \
	  echo "note: bubblewrap (bwrap) is not installed: solvers will run unsandboxed and records say sandbox: none"
	@test -x $(BIN)/python || (command -v $(PY) >/dev/null 2>&1 && $(PY) -m venv $(VENV)) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[peers,test]" -c constraints.txt
	@touch $@

setup: $(BIN)/phantombench

# the El-UNet brain-slice phantoms alone (elunet-soft/stiff/noisy and the random training set)
brain: setup
	$(BIN)/phantombench official --task brain-elasticity --generate --root $(DATA)
	$(BIN)/phantombench verify $(DATA)/brain-slice/elunet-soft/v1 --regenerate 1

data: setup
	$(BIN)/phantombench official --generate --root $(DATA)

run: data
	@$(MAKE) --no-print-directory -j2 lane-fast lane-slow
	$(BIN)/phantombench leaderboard

lane-fast lane-slow:
	@set -e; for tb in $(if $(filter lane-slow,$@),$(BASELINES_SLOW),$(BASELINES)); do \
	  echo "== submit $${tb#*:} on $${tb%%:*}"; \
	  $(BIN)/phantombench submit $${tb#*:} --task $${tb%%:*} --data $(DATA); \
	done

learned: data
	@set -e; for spec in $(LEARNED); do \
	  echo "== submit $$spec"; \
	  $(BIN)/phantombench submit $$spec --data $(DATA); \
	done
	$(BIN)/phantombench leaderboard

learned-registration: setup
	@set -e; for spec in $(LEARNED_REG); do \
	  echo "== submit $$spec"; \
	  $(BIN)/phantombench submit $$spec --task registration --data $(DATA); \
	done
	$(BIN)/phantombench leaderboard

# the three papers' tables at the smoke budget (minutes each) into results/papers, leaving the committed
# reports in leaderboard/papers alone; --budget paper is hours (see the reports)
reproduce: setup
	$(BIN)/phantombench reproduce elunet --data $(DATA) --out results/papers
	$(BIN)/phantombench reproduce dime --data $(DATA) --out results/papers
	$(BIN)/phantombench reproduce cnn-pinn-eit --data $(DATA) --out results/papers

leaderboard: setup
	$(BIN)/phantombench leaderboard --check

test: setup
	$(BIN)/python -m pytest -q -m "not slow"

test-all: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python scripts/bench_all.py

# re-resolve the newest versions pyproject.toml allows into a scratch venv and rewrite constraints.txt from it
# (then re-run the tests and `make run`, and commit constraints.txt with the records it produced)
lock:
	rm -rf .venv-lock && $(PY) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet -e ".[peers,test]"
	{ head -2 constraints.txt; .venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^-e'; } > constraints.tmp
	mv constraints.tmp constraints.txt && rm -rf .venv-lock

clean:
	rm -rf $(DATA) results .pytest_cache
