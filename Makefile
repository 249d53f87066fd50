# Two commands for a newcomer: `make train` and `make test`. Both create .venv on first
# use with the pinned CPU torch and the package installed in editable mode.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
CONFIG ?= cora.yaml

.PHONY: train test test-fast lint test-dgl bench-reference reference-venv setup clean

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

# The edit loop: everything but the end-to-end tests marked slow (CI runs them all).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check .

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

# The official GraphMAE2 code against graphmae2, side by side (benchmarks/reference/reference_epoch_time.py).
# REF is a checkout of THUDM/GraphMAE2 at commit bc473e8, e.g.
#   git clone https://github.com/THUDM/GraphMAE2 ref && git -C ref checkout bc473e8
# It runs in its own venv: the DGL lock plus what the official code imports beyond it
# (benchmarks/reference/reference-requirements.txt). Not in the DGL test venv, because `import dgl` imports
# ogb when it is installed, and ogb then checks PyPI for its own version. The stamp is named after
# both locks, so editing either rebuilds it. The graphmae2 rows run under this venv's torch 2.2.1
# (the reference's) and under .venv's torch 2.13 (graphmae2's pin);
# GRAPHMAE2_PY=/path/to/python uses another interpreter with torch 2.13 instead of building .venv.
REF_VENV   ?= $(HOME)/.cache/graphmae2/dgl-reference-venv
REF_LOCK   := benchmarks/reference/reference-requirements.txt
REF_STAMP   = $(REF_VENV)/.installed-$(shell cat $(DGL_LOCK) $(REF_LOCK) | sha256sum | cut -c1-16)
BENCH_ARGS ?= --rounds 3 --epochs 10 --warmup 2
GRAPHMAE2_PY ?=
BENCH_PY    = $(if $(GRAPHMAE2_PY),$(GRAPHMAE2_PY),$(abspath $(PY)))

$(REF_STAMP):
	$(PYTHON) -m venv --clear $(REF_VENV)
	$(REF_VENV)/bin/python -m pip install --quiet --no-deps --only-binary=:all: -r $(DGL_LOCK) -r $(REF_LOCK)
	touch $@

# The venv alone, for benchmarks/reference/reference_accuracy.py (the official code's own accuracy).
reference-venv: $(REF_STAMP)

bench-reference: $(REF_STAMP) $(if $(GRAPHMAE2_PY),,$(STAMP))
	@test -f "$(REF)/main_full_batch.py" || { echo "REF=/path/to/GraphMAE2 checkout (bc473e8) is required"; exit 2; }
	DGLBACKEND=pytorch PYTHONPATH=$(CURDIR) $(REF_VENV)/bin/python benchmarks/reference/reference_epoch_time.py \
		--reference $(REF) --graphmae2-python $(REF_VENV)/bin/python $(BENCH_PY) $(BENCH_ARGS)
