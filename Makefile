# Two commands do all the set-up on a fresh machine:
#   make notebook   build .venv, then execute neural_style_transfer.ipynb in place
#                   (progress bars are off there: a saved widget would read "0%" on GitHub)
#                   (writes the README's figures and GIFs under assets/generated/; a learner's
#                   run writes to outputs/, which git ignores)
#   make test       build .venv if missing, then run the unit tests and re-execute the
#                   notebook under nbval in quick mode (small images, few steps)
# and for working in the notebook:
#   make lab        open the notebook in JupyterLab, served from .venv to this machine only
#                   (extra server options: make lab LAB_ARGS="--port=8899")
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: notebook test lab bench gallery venv clean

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

# 127.0.0.1: reachable from this machine only, whatever a Jupyter config file says.
# Jupyter refuses to run as root unless told (containers often run as root).
LAB_ARGS ?=
lab: venv
	$(PY) -m jupyter lab --ServerApp.ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root) \
	    $(LAB_ARGS) neural_style_transfer.ipynb

# Speed benchmark (about 19 minutes on 2 cores): writes bench/results.json and results.md
bench: venv
	$(PY) bench/benchmark.py --notebook

# The README's 512 px gallery, painted by the notebook's own `paint` (about 10 minutes on
# 2 cores): assets/generated/gallery/, seconds and quality figures in bench/results.json
gallery: venv
	$(PY) bench/gallery.py

clean:
	rm -rf $(VENV) .pytest_cache
