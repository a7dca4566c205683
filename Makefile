# Two entry points: `make quick` (install, then the CPU-sized run to results/figure8.pdf and
# figure9.pdf) and `make test` (install, then linters and the test suite; what CI runs).
PYTHON ?= python3
VENV ?= .venv
# The CPU build that lies on this kind of machine; set TORCH='torch==2.13.0 --index-url ...'
# (or any build in pyproject's range) for CUDA. It is installed first so pip takes no other.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint quick clean test-slurm

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check scripts tests benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint --directory $$(mktemp -d) --snakefile $(CURDIR)/Snakefile --configfile $(CURDIR)/config.yaml

test: lint
	$(BIN)/python -m pytest -ra --durations=40

# GLUE for `make quick`: configs/quick.yaml reads ../shared/data/glue when that folder exists,
# else the Hugging Face hub; GLUE_DIR=/path/to/glue_data (<TASK>/{train,dev}.tsv) reads that folder.
GLUE_DIR ?=
QUICK_TARGETS := results/figure8.pdf results/figure9.pdf results/table1.csv results/claims.md results/pruning.pdf
comma := ,
QUICK_DATA = $(if $(GLUE_DIR),--config 'data={source: local$(comma) local_dir: "$(GLUE_DIR)"}')

# The run, then a summary: run time, data source, where the figures and tables are.
quick: install
	@start=$$(date +%s); \
	$(BIN)/snakemake --cores 2 $(QUICK_TARGETS) --configfile configs/quick.yaml $(QUICK_DATA); \
	rc=$$?; \
	$(BIN)/python -m headlab.summary --seconds $$(($$(date +%s) - start)) --status $$rc $(QUICK_TARGETS); \
	exit $$rc

# The SLURM profile on a live one-node cluster (root, apt): up, the SLURM tests, always down.
test-slurm: install
	bash tests/slurm/cluster.sh up && HEADLAB_SLURM=1 $(BIN)/python -m pytest -ra -m slurm tests/slurm/test_slurm.py; \
	rc=$$?; bash tests/slurm/cluster.sh down; exit $$rc

clean:
	rm -rf results logs .snakemake
