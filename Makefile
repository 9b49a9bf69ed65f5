# Entry points for users. Every target bootstraps .venv on first use.
# Variables: CONFIG (dataset.toml), DATA (data), RUN (training run name), GPUS (1), ARGS (extra CLI flags).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= dataset.toml
DATA   ?= data
RUN    ?= default
GPUS   ?= 1
ARGS   ?=
# Test processes (pytest-xdist): one more than the cores this machine reports, since many tests wait on
# servers, browsers and subprocesses and the extra worker keeps the cores busy meanwhile (on 2 cores:
# 7 min 31 s with 3 workers, 8 min 11 s with 2). TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print(len(os.sched_getaffinity(0)) + 1)")

STAMP       := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench
# Quoted, so a CONFIG, DATA or RUN with spaces is one argument (make itself cannot quote a target path).
STAGE_ARGS   = --config "$(CONFIG)" --data "$(DATA)"

.PHONY: help test test-quick lint dataset crawl facecrop dedup train rejects bench export clean-venv

help:
	@echo "make dataset   crawl -> facecrop -> dedup -> shard  (CONFIG=$(CONFIG) DATA=$(DATA))"
	@echo "make train     train a DCGAN on DATA/shards/faces64.npy (RUN=$(RUN) GPUS=$(GPUS))"
	@echo "make rejects   build DATA/rejects/index.html"
	@echo "make review    the local review app: click to promote/demote crops and split clusters (prints its URL)"
	@echo "make export    the shard as FORMAT=imagefolder|webdataset|parquet in OUT=$(DATA)/export/FORMAT"
	@echo "make bench     benchmarks against each stage's baseline"
	@echo "make bench-gpu the one GPU check on a CUDA machine's own python (docs/gpu.md)"
	@echo "make test      lint + format check + pip check + the test suite"
	@echo "make test-quick the fast tests (contracts, configs, detection, sites, clusters) for the inner loop"

$(STAMP): pyproject.toml
	@test -x "$(BIN)/python" || $(PYTHON) -m venv "$(VENV)"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pip check
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=10 $(ARGS)

# The inner loop: contracts, config checks, detection, the site parsers, dedup's clusters and the shard
# (under 2 minutes on 2 cores). `make test` runs everything and is what CI runs.
QUICK_TESTS = tests/test_contracts.py tests/test_foundation.py tests/test_default_config.py \
	tests/test_reliability_small.py tests/facecrop/test_facecrop_evaluate.py tests/facecrop/test_facecrop_align.py \
	tests/facecrop/test_facecrop_edges.py tests/crawler/test_crawler_exit6.py tests/crawler/test_crawler_sites.py \
	tests/crawler/test_crawler_safety.py tests/dedup/test_dedup_clusters.py tests/dedup/test_dedup_search.py \
	tests/train/test_train_shard.py
test-quick: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow" --durations=5 $(QUICK_TESTS) $(ARGS)

crawl: $(STAMP)
	$(BIN)/animefaces crawl $(STAGE_ARGS) $(ARGS)

facecrop: $(STAMP)
	$(BIN)/animefaces facecrop $(STAGE_ARGS) $(ARGS)

dedup: $(STAMP)
	$(BIN)/animefaces dedup $(STAGE_ARGS) $(ARGS)

dataset: $(STAMP)
	$(BIN)/animefaces dataset $(STAGE_ARGS)

# The shard for other tools (docs/dedup.md, "Exports"); parquet needs pyarrow, in the `export` extra.
FORMAT ?= imagefolder
OUT    ?= $(DATA)/export/$(FORMAT)
export: $(STAMP)
	$(BIN)/animefaces dedup export --format "$(FORMAT)" --out "$(OUT)" $(STAGE_ARGS) $(ARGS)

rejects: $(STAMP)
	$(BIN)/animefaces facecrop rejects --html $(STAGE_ARGS)

train: $(STAMP)
ifeq ($(GPUS),1)
	$(BIN)/animefaces train $(STAGE_ARGS) --run "$(RUN)" $(ARGS)
else
	$(BIN)/torchrun --standalone --nproc_per_node=$(GPUS) -m train -- $(STAGE_ARGS) --run "$(RUN)" $(ARGS)
endif

review: $(STAMP)
	$(BIN)/animefaces review $(STAGE_ARGS) $(ARGS)

bench: $(BENCH_STAMP)
	$(BIN)/animefaces bench $(STAGE_ARGS) $(ARGS)

# The prepared GPU check (docs/gpu.md). It needs no venv and no registry: GPU_PYTHON is the first of
# python3 and the venv's python whose torch sees a CUDA GPU (else python3), run with this checkout on PYTHONPATH.
.PHONY: bench-gpu
GPU_PYTHON ?= $(firstword $(foreach p,$(PYTHON) $(BIN)/python,$(shell $(p) -c "import torch; assert torch.cuda.is_available()" >/dev/null 2>&1 && echo $(p))) $(PYTHON))
bench-gpu:
	PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}" $(GPU_PYTHON) -m bench.bench_gpu --out runs/bench-gpu.json $(ARGS)

clean-venv:
	rm -rf $(VENV)
