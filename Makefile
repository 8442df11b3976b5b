# nvcodec: `make demo` installs and runs the codec on a generated clip; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; a newer or unpinned torch would pull the CUDA packages.
TORCH ?= torch==2.13.0
OUT := out

.PHONY: install test demo bench bench-quick lint clean

install: $(BIN)/nvenc

$(BIN)/nvenc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

test: install
	$(BIN)/python -m pytest

demo: install
	mkdir -p $(OUT)
	$(BIN)/python -m nvcodec.sample $(OUT)/sample.y4m --size 352x288 --frames 32
	$(BIN)/nvenc $(OUT)/sample.y4m -o $(OUT)/sample.nvc --qp 32 --stats $(OUT)/sample_stats.json -y
	$(BIN)/nvinfo $(OUT)/sample.nvc
	$(BIN)/nvdec $(OUT)/sample.nvc -o $(OUT)/sample_decoded.y4m -y

lint: install
	$(BIN)/pip install --quiet ruff
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(OUT) build dist src/*.egg-info .pytest_cache
