# Two commands set the course up on a fresh machine (see README.md):
#   make lab    installs what the course needs into .venv and opens it in JupyterLab
#   make test   installs the same, then runs the unit tests and every notebook (cpu profile)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The tests run offline: no model or dataset may come from a hub in the cpu profile.
OFFLINE := FTLAB_PROFILE=cpu HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# llama-cpp-python (lesson 12) compiles llama.cpp when it is installed. Without its multimodal library and HTTPS
# support, which the course does not use, that takes 3.6 minutes on 2 cores instead of 6.3.
LLAMA_CPP_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DLLAMA_OPENSSL=OFF
# The course's own environment has every extra of pyproject.toml, at the lock's versions (requirements.txt).
EXTRAS := llama-cpp,lab,classroom,test

.PHONY: install lab test unit notebooks data clean assignments llamafactory llamafactory-check checks

install: $(BIN)/.installed

$(BIN)/.installed: requirements.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CPP_CMAKE_ARGS) $$CMAKE_ARGS" $(BIN)/python -m pip install --quiet -r requirements.txt \
	  -e ".[$(EXTRAS)]"
	touch $@

# JupyterLab at the repository's root, so that the lessons' links to ../exercises and ../docs resolve, opening the
# first lesson (the address it prints and the browser it opens lead there). Run as root (a container), JupyterLab
# refuses to start without --allow-root. LAB_OPTIONS: more options for `jupyter lab` (the browser test: port, token).
lab: install
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks/00_welcome.ipynb \
	  $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_OPTIONS)

# Unit tests first (fast), then each lesson executed top to bottom, one at a time, then the exercises released and
# autograded with nbgrader (exercises/test_assignments.py; they use the models the lessons cache), then the course
# through LLaMA-Factory in its own environment (llamafactory-check, lesson 13), then the course as learners install
# and open it (checks).
test: install
	$(OFFLINE) $(BIN)/python -m pytest tests notebooks exercises --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -p no:cacheprovider
	$(MAKE) llamafactory-check
	$(MAKE) checks

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
# wheels; the Colab install cell keeps Colab's torch in a simulated Colab, where lessons 00 and 02 then run;
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

# Re-execute the lessons in place, so the committed notebooks carry fresh outputs.
notebooks: install
	for nb in notebooks/[0-9]*.ipynb; do \
	  $(OFFLINE) $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=900 $$nb || exit 1; \
	done

# Regenerate the course datasets under data/ from their seeded generators.
data: install
	$(BIN)/ftlab data

clean:
	rm -rf artifacts
