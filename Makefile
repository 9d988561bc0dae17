# Two commands set up a fresh machine (see README):
#   make demo   build the offline default model and run the quickstart notebook headless
#   make test   run every test
# TORCH_SPEC picks the torch build: the default is the CPU wheel on this machine's disk; a CUDA user
# says e.g. `make demo TORCH_SPEC=torch`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench reproduce install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/bert-insight model build
	$(BIN)/bert-insight reproduce notebooks/00_quickstart.ipynb

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/layer_ig.py

reproduce: $(STAMP)
	$(BIN)/bert-insight reproduce notebooks/01_ramnath2020_layer_ig.ipynb -p n_examples 200

clean:
	rm -rf $(VENV) runs
