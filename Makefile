# Two commands: `make lab` (open the course) and `make test` (run every test and notebook).
# Each sets itself up on first use: a virtual environment in .venv, the pinned
# requirements, this package (editable), and Graphviz's `dot` program.
# For teaching: `make student` (student copies in build/student) and `make site` (the static
# website in build/site, built by Jupyter Book from requirements-site.txt).
# Publishing a copy: `make badges REPO=https://github.com/OWNER/NAME` (Colab and Binder links).
#
# Variables:
#   TORCH=cpu   PyTorch's CPU-only wheels (Linux without an NVIDIA GPU: 190 MB instead of
#               several GB of CUDA libraries). Give it on the first `make` (or after `make clean`).
#   ARGS=...    more JupyterLab options for `make lab`, e.g. ARGS="--port=9000 --ip=0.0.0.0".
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SITE_STAMP := $(VENV)/.installed-site
# The one address of PyTorch's CPU-only wheels (binder/requirements.txt uses it too; a test checks).
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu

# The venv remembers which wheels it was made with (in $(STAMP)); TORCH defaults to that, so a
# later reinstall keeps them, and asking for the other kind is refused with the way to switch.
INSTALLED_TORCH := $(if $(wildcard $(STAMP)),$(patsubst torch=%,%,$(shell cat $(STAMP))))
ifeq ($(origin TORCH),undefined)
TORCH := $(filter cpu,$(INSTALLED_TORCH))
endif
ifneq ($(filter-out cpu,$(TORCH)),)
$(error TORCH=$(TORCH) is not a choice: use TORCH=cpu for PyTorch's CPU-only wheels, or leave TORCH out)
endif
ifneq ($(filter default cpu,$(INSTALLED_TORCH)),)
ifneq ($(INSTALLED_TORCH),$(or $(TORCH),default))
$(error .venv holds PyTorch's $(INSTALLED_TORCH) wheels, not the ones TORCH=$(TORCH) asks for: run `make clean`, then `make setup TORCH=$(TORCH)`)
endif
endif

.PHONY: lab test test-portable setup dot clean student site badges

lab: setup
	$(BIN)/python tools/lab.py $(ARGS)

# Test files and notebooks run in parallel, one file per worker (a notebook's cells stay in order).
test: setup $(SITE_STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile --durations=10 -rfEs

# Every notebook replayed under other numerical settings (instruction sets, MKL and oneDNN code
# paths, thread counts; listed in tools/portable.py): a compared output that changes fails.
test-portable: setup
	$(BIN)/python tools/portable.py

# Student copies of every notebook: no outputs, solutions replaced by stubs.
student: $(STAMP)
	$(BIN)/python tools/student_copies.py --out build/student

# The course as a static website (Jupyter Book): the README, then every notebook with its
# committed outputs; settings in tools/site/.
site: $(SITE_STAMP)
	$(BIN)/python tools/build_site.py --out build/site

# Colab / Binder badges in the README and the Colab set-up cell atop every notebook, made from
# the address in pyproject.toml ([tool.course]); REPO=... (and BRANCH=...) record a new one first.
badges: $(STAMP)
	$(BIN)/python tools/cloud.py $(if $(REPO),--repo $(REPO)) $(if $(BRANCH),--branch $(BRANCH))

setup: $(STAMP) dot

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(if $(TORCH),--extra-index-url $(TORCH_CPU_INDEX)) -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	echo "torch=$(or $(TORCH),default)" > $@

# The site's tools (requirements-site.txt), constrained to the course's pins.
$(SITE_STAMP): requirements-site.txt | $(STAMP)
	$(BIN)/python -m pip install --quiet -c requirements.txt -r requirements-site.txt
	touch $@

dot:
	@tools/ensure_dot.sh

clean:
	rm -rf $(VENV) build .pytest_cache
