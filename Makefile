# Two commands do all the set-up on a fresh machine:
#   make notebook   build .venv, then execute neural_style_transfer.ipynb in place
#                   (writes the README's figures and GIFs under assets/generated/; progress
#                   bars are off, as a saved bar shows only its last state; a learner's run
#                   writes to outputs/, which git ignores)
#   make test       build .venv if missing, then run the tests; the notebook is executed in
#                   quick mode (small images, few steps), in one kernel: with other images,
#                   then every cell again
# For working on the project:
#   make lab        open the notebook in JupyterLab, served from .venv to this machine only
#                   (extra server options: make lab LAB_ARGS="--port=8899")
#   make test-all   the tests, with the slow ones (full papermill runs, 512 px GIFs)
#   make bench      the speed measurements and the classroom timings (about 12 minutes)
#   make gallery    the README's 512 px gallery (about 15 minutes on 2 cores)
#   make readme     render the README's tables from bench/results.json
#   make venv       only build .venv;  make clean  remove it (and pytest's cache)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: notebook test test-all lab bench gallery readme venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

notebook: venv
	NST_OUTPUT_DIR=assets/generated TQDM_DISABLE=1 $(PY) -m jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=-1 --ExecutePreprocessor.kernel_name=python3 \
	    neural_style_transfer.ipynb
	$(PY) -m jupytext --sync neural_style_transfer.ipynb   # the .py twin gets the run's metadata
	@echo "Figures and GIFs: assets/generated/"

test: venv
	$(PY) -m pytest

test-all: venv
	$(PY) -m pytest -m "slow or not slow"

# 127.0.0.1: reachable from this machine only, whatever a Jupyter config file says.
# Jupyter refuses to run as root unless told (containers often run as root).
LAB_ARGS ?=
lab: venv
	$(PY) -m jupyter lab --ServerApp.ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root) \
	    $(LAB_ARGS) neural_style_transfer.ipynb

bench: venv
	$(PY) -m bench.measure
	$(PY) -m bench.timings
	$(PY) -m bench.readme

gallery: venv
	$(PY) -m bench.gallery
	$(PY) -m bench.readme

readme: venv
	$(PY) -m bench.readme

clean:
	rm -rf $(VENV) .pytest_cache
