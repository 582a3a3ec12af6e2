# Two commands on a fresh machine (each creates .venv with Python 3.12 when missing):
#   make run    -- regenerate the official phantoms (El-UNet brain slices, liver MRE, EIT), evaluate the
#                  classical baselines on them and render the leaderboard (the main job)
#   make test   -- run the tests (fast set; `make test-all` adds the slow ones)
PY ?= python3.12
VENV := .venv
BIN := $(VENV)/bin
DATA ?= data
# The main job in two lanes that run side by side (make -j2), one per core, each a fixed sequence of units:
# gen.TASK[.PRESET] generates official datasets (one single-worker process), sub.TASK.SOLVER submits a classical
# baseline or the trivial reference. The lanes are balanced by measured cost (core-minutes on this 2-core
# machine: dime-liver 6.5, mdev-liver 5.4, the three EIT sets 5.4, elastix 3.8, EIT TV 2.6, direct elasticity
# 2.4, Kheil 1.3, brain 1.2, every other unit under 1); a submission also waits for every dataset of its task.
LANE1 ?= gen.mre.dime-liver gen.registration sub.registration.elastix sub.registration.identity \
         gen.brain-elasticity sub.brain-elasticity.direct-elasticity
LANE2 ?= gen.mre.mdev-liver gen.mre.homogeneous gen.eit.cnn-pinn-case1 gen.eit.cnn-pinn-case2 \
         gen.eit.cnn-pinn-case3 sub.eit.tv sub.eit.constant sub.eit.noser sub.eit.tikhonov \
         sub.mre.constant sub.mre.ahi sub.mre.mdev sub.brain-elasticity.constant
UNITS := $(LANE1) $(LANE2)
unit_task = $(word 2,$(subst ., ,$(1)))
# each unit after the one before it in its lane
chain = $(if $(word 2,$(1)),$(eval $(word 2,$(1)): $(firstword $(1)))$(call chain,$(wordlist 2,$(words $(1)),$(1))))

# the learned solvers' leaderboard records (hours of CPU on 2 cores; not part of `make run`): per-sample training
# budgets in CPU seconds for the per-case models, and phantoms generated from seed 1 (the training-data policy)
# for DIME and CNN-PINN
LEARNED ?= "elunet-ps-w1 --task brain-elasticity --param train_time_s=60 --param clock=cpu --param threads=1" \
           "pinn-elasticity --task brain-elasticity --param train_time_s=60 --param clock=cpu --param threads=1" \
           "dime-cnn --task mre --preset dime-liver --train-n 200 --train-seed 1 --param steps=4000 --param augment=false --param progress=false" \
           "cnn-pinn --task eit --train-n 300 --train-seed 1 --param stage1_epochs=40 --param epochs=200 --param progress=false"

# the learned registration rows (P4/P5 models at the board budget: narrow networks, 300 Adam steps on the official
# 200 training pairs; about 45 min of CPU on 2 cores; not part of `make run`)
REG_NARROW := --param enc=[8,16,16,16] --param dec=[16,16,16,16,16,8,8] --param lr=0.001 --param steps=300 \
              --param val_every=100 --param progress=false
REG_ATTN := --param channels=[8,16,32,64] --param steps=300 --param val_every=100 --param progress=false
LEARNED_REG ?= "voxelmorph-diffusion $(REG_NARROW)" "hypermorph-elastic $(REG_NARROW)" \
               "hypermorph-diffusion $(REG_NARROW)" "kheil-diffusion $(REG_ATTN)" "kheil-jacobian $(REG_ATTN)" \
               "kheil-rigidity $(REG_ATTN)" "kheil-sliding $(REG_ATTN)"

.PHONY: run data brain learned learned-registration reproduce test test-all setup bench leaderboard clean lock

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

# more than two cores: every dataset with one dask worker per core first, then all submissions at once
NPROC ?= $(shell nproc 2>/dev/null || echo 2)
LANES := $(filter 1 2,$(NPROC))

run: setup
ifneq ($(LANES),)
	@$(MAKE) --no-print-directory -j2 $(lastword $(LANE1)) $(lastword $(LANE2))
else
	$(BIN)/phantombench official --generate --root $(DATA)
	@$(MAKE) --no-print-directory -j$(NPROC) $(filter sub.%,$(UNITS))
endif
	$(BIN)/phantombench leaderboard

ifneq ($(LANES),)
$(call chain,$(LANE1))
$(call chain,$(LANE2))
endif
# a submission needs every official dataset of its task
$(foreach u,$(filter sub.%,$(UNITS)),$(eval $(u): $(filter gen.$(call unit_task,$(u)) \
  gen.$(call unit_task,$(u)).%,$(UNITS))))

gen.%: setup
	@echo "== $$(date +%T) generate $*"
	@$(BIN)/phantombench official --generate --workers 1 --root $(DATA) --task $(firstword $(subst ., ,$*)) \
	  $(addprefix --preset ,$(word 2,$(subst ., ,$*)))

sub.%: setup
	@echo "== $$(date +%T) submit $(word 2,$(subst ., ,$*)) on $(firstword $(subst ., ,$*))"
	@$(BIN)/phantombench submit $(word 2,$(subst ., ,$*)) --task $(firstword $(subst ., ,$*)) --data $(DATA)

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
