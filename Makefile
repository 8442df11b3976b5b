# nvcodec: `make demo` installs and runs the codec on a generated clip; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The torch we test. On Linux its default wheel pulls several GB of CUDA packages: CPU=1 (make
# demo CPU=1, make test CPU=1) installs PyTorch's CPU build from PyTorch's own package index.
TORCH ?= torch==2.13.0
CPU ?=
TORCH_INDEX := $(if $(CPU),--index-url https://download.pytorch.org/whl/cpu)
OUT := out

.PHONY: install test demo bench bench-deps bench-quick lint clean

install: $(BIN)/nvenc

$(BIN)/nvenc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH) $(TORCH_INDEX)
	$(BIN)/pip install --quiet -e '.[test,cluster]'
	touch $@

test: install
	$(BIN)/python -m pytest

demo: install
	mkdir -p $(OUT)
	$(BIN)/python -m nvcodec.sample $(OUT)/sample.y4m --size 352x288 --frames 32
	$(BIN)/nvenc $(OUT)/sample.y4m -o $(OUT)/sample.nvc --qp 32 --stats $(OUT)/sample_stats.json -y
	$(BIN)/nvinfo $(OUT)/sample.nvc
	$(BIN)/nvdec $(OUT)/sample.nvc -o $(OUT)/sample_decoded.y4m -y

RESULTS := benchmarks/results
QUICK := $(RESULTS)/quick

bench-deps: install
	$(BIN)/pip install --quiet -e '.[test,cluster,bench]'

# The development set: Foreman, Cockatoo, Cactus (96 frames), people (9), Kodak, rate control on
# Foreman, car_traffic and vtest, segments (speed and cost) on Foreman; several hours on a CPU.
bench: bench-deps
	$(BIN)/python -m benchmarks.complexity --json $(RESULTS)/complexity.json
	$(BIN)/python -m benchmarks.speed --sizes 416x240,854x480,1280x720,1920x1080 --frames 3 --json $(RESULTS)/speed.json
	$(BIN)/python -m benchmarks.rd --out $(RESULTS)
	$(BIN)/python -m benchmarks.intra --out $(RESULTS)
	$(BIN)/python -m benchmarks.ratecontrol --out $(RESULTS)
	$(BIN)/python -m benchmarks.segments --out $(RESULTS)
	$(BIN)/python -m benchmarks.fuzz --cases 5000 --json $(RESULTS)/fuzz.json
	$(BIN)/python -m benchmarks.report --results $(RESULTS) --out benchmarks/RESULTS.md

# A few minutes: 9 frames of two clips, three qps, x264 and x265, three Kodak images, 240p speed.
bench-quick: bench-deps
	mkdir -p $(QUICK)
	$(BIN)/python -m benchmarks.rd --clips people,foreman --frames 9 --qps 12,32,52 --anchors x264,x265 --out $(QUICK)
	$(BIN)/python -m benchmarks.intra --images 3 --out $(QUICK)
	$(BIN)/python -m benchmarks.speed --sizes 416x240 --frames 2 --json $(QUICK)/speed.json
	$(BIN)/python -m benchmarks.report --results $(QUICK) --out $(QUICK)/RESULTS.md

lint: install
	$(BIN)/pip install --quiet ruff
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(OUT) build dist src/*.egg-info .pytest_cache
