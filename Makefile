# Two commands for a newcomer: `make train` and `make test`. Both create .venv on first
# use with the pinned CPU torch and the package installed in editable mode.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
CONFIG ?= cora.yaml

.PHONY: train test test-dgl setup clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test,plot]"
	touch $(STAMP)

setup: $(STAMP)

train: $(STAMP)
	$(PY) train.py --config $(CONFIG)

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache

# DGL interop tests (tests/dgl) in their own pinned venv, cached outside the repository and
# shared by every checkout; the main .venv never gets DGL. DGL 2.1.0, the last release for
# Python 3.11, needs torch 2.0-2.2.1. The venv is built once per content of the lock file:
# editing a pin gives a new stamp name, so the next run rebuilds it from scratch.
DGL_VENV  ?= $(HOME)/.cache/graphmae2/dgl-venv
DGL_LOCK  := tests/dgl/requirements.txt
DGL_STAMP  = $(DGL_VENV)/.installed-$(shell sha256sum $(DGL_LOCK) | cut -c1-16)

# --no-deps: the lock lists every package, and leaves out the CUDA pieces torch never loads
# on the CPU (see the lock's header).
$(DGL_STAMP):
	$(PYTHON) -m venv --clear $(DGL_VENV)
	$(DGL_VENV)/bin/python -m pip install --quiet --no-deps --only-binary=:all: -r $(DGL_LOCK)
	touch $@

# The checkout goes on PYTHONPATH instead of being installed: an editable install in a
# shared venv would point at whichever checkout built it.
test-dgl: $(DGL_STAMP)
	DGLBACKEND=pytorch PYTHONPATH=$(CURDIR) $(DGL_VENV)/bin/python -m pytest -q tests/dgl
