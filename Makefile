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

.PHONY: demo test test-compat bench bench-attention bench-deeplift reproduce reproduce-deeplift reproduce-kovaleva reproduce-kovaleva-table1 bench-ablate reproduce-tenney reproduce-vanaken bench-probing classifiers install clean

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

# The fast tiny-model tests again under transformers 4.x (the default venv has 5.x): the adapters must
# serve both. captum's reference comparisons are left out here: its LayerIntegratedGradients cannot
# differentiate 4.x blocks' tuple outputs; the IG completeness and cross-family tests still run.
COMPAT_VENV ?= .venv-tf4
$(COMPAT_VENV)/.installed: pyproject.toml
	test -x $(COMPAT_VENV)/bin/python || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(COMPAT_VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	$(COMPAT_VENV)/bin/python -m pip install --quiet -e ".[dev]" "transformers>=4.40,<5"
	touch $(COMPAT_VENV)/.installed

test-compat: $(COMPAT_VENV)/.installed
	$(COMPAT_VENV)/bin/python -c "import transformers; print('transformers', transformers.__version__)"
	$(COMPAT_VENV)/bin/python -m pytest -q -p no:cacheprovider -m "not slow and not shared and not notebook" \
		-k "not captum" tests/test_adapters.py tests/test_kernels.py tests/test_layer_ig.py tests/test_qa.py \
		tests/test_text.py tests/test_classifiers.py tests/test_attention.py tests/test_attention_linguistic.py \
		tests/test_ablate_heads.py tests/test_probing.py tests/test_layer_deeplift.py tests/test_gpt2.py \
		tests/test_representations.py tests/test_ig_blocks.py

bench: $(STAMP)
	$(BIN)/python benchmarks/layer_ig.py

bench-deeplift: $(STAMP)
	$(BIN)/python benchmarks/layer_deeplift.py

bench-attention: $(STAMP)
	$(BIN)/python benchmarks/attention.py

bench-ablate: $(STAMP)
	$(BIN)/python benchmarks/ablate_heads.py

bench-probing: $(STAMP)
	$(BIN)/python benchmarks/probing.py --source $(SHARED_DATA)

reproduce: $(STAMP)
	$(BIN)/bert-insight reproduce notebooks/01_ramnath2020_layer_ig.ipynb -p n_examples 200 -p cache_dir $(CURDIR)/runs/ig_cache

reproduce-deeplift: $(STAMP)
	$(BIN)/bert-insight reproduce notebooks/02_deeplift_squad2.ipynb -p n_examples 200 -p cache_dir $(CURDIR)/runs/deeplift_cache

# GLUE data for the classifiers: the tsv folders (MRPC/, STS-B/, ...); QNLI needs none (bundled).
GLUE_DIR ?= ../shared/data/glue
classifiers: $(STAMP)
	$(BIN)/bert-insight model build --all --glue-dir $(GLUE_DIR)

SHARED_DATA ?= $(abspath ../shared/data)
reproduce-kovaleva: $(STAMP)
	$(BIN)/bert-insight reproduce notebooks/04_kovaleva2019_attention.ipynb -p shared_data $(SHARED_DATA)

# van Aken et al. 2019: builds the bAbI model first where it is absent (about 40 min on 2 Zen 4 cores).
reproduce-vanaken: $(STAMP)
	$(BIN)/bert-insight reproduce notebooks/03_vanaken2019.ipynb -p shared_data $(SHARED_DATA) \
		-p cache_dir $(CURDIR)/runs/edge_states

reproduce-tenney: $(STAMP)
	$(BIN)/bert-insight reproduce notebooks/05_tenney2019_edge_probing.ipynb -p shared_data $(SHARED_DATA) \
		-p cache_dir $(CURDIR)/runs/edge_states

reproduce-kovaleva-table1: $(STAMP)
	$(BIN)/python -m bert_insight.kovaleva2019 --glue-dir $(GLUE_DIR) --output runs/kovaleva2019_table1.csv

clean:
	rm -rf $(VENV) $(COMPAT_VENV) runs
