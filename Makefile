# Two commands: `make lab` (open the course) and `make test` (run every test and notebook).
# Each sets itself up on first use: a virtual environment in .venv, the pinned
# requirements, this package (editable), and Graphviz's `dot` program.
# For teaching: `make student` (student copies in build/student) and `make site` (static
# HTML pages in build/site).
# Publishing a copy: `make badges REPO=https://github.com/OWNER/NAME` (Colab and Binder links).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab test setup dot clean student site badges

lab: setup
	$(BIN)/jupyter lab notebooks/

test: setup
	$(BIN)/python -m pytest

# Student copies of every notebook: no outputs, solutions replaced by stubs.
student: $(STAMP)
	$(BIN)/python tools/student_copies.py --out build/student

# Every notebook with its committed outputs as static HTML, with a contents page.
site: $(STAMP)
	$(BIN)/python tools/build_site.py --out build/site

# Colab / Binder badges in the README and the Colab set-up cell atop every notebook, made from
# the address in pyproject.toml ([tool.course]); REPO=... (and BRANCH=...) record a new one first.
badges: $(STAMP)
	$(BIN)/python tools/cloud.py $(if $(REPO),--repo $(REPO)) $(if $(BRANCH),--branch $(BRANCH))

setup: $(STAMP) dot

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

dot:
	@tools/ensure_dot.sh

clean:
	rm -rf $(VENV) build .pytest_cache
