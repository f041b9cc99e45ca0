# Two commands on a machine with nothing but Python 3.11: `make demo` and `make test`.
# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-slow lint bench llama clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else "twin needs Python 3.11+: run make PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/twin demo

# The default run stays under 15 minutes on 2 cores; CI runs the slow tests after it.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"
	$(BIN)/ruff check .

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/import_bench.py

# The optional llama.cpp backend (generate.backend = "llama.cpp"): llama-cpp-python builds
# llama.cpp from source, about 7 minutes on 2 cores. The build enables the instruction sets
# this CPU reports (as -march=native would) but never AMX: some VMs report AMX that they
# do not run, and a native build then dies with "Illegal instruction" at the first token.
CPU_FLAGS := $(shell grep -m1 -o -w -E 'avx|avx2|fma|f16c|avx512f|avx512_vnni|avx512_bf16' /proc/cpuinfo 2>/dev/null | sort -u)
has = $(if $(filter $(1),$(CPU_FLAGS)),ON,OFF)
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=$(call has,avx) -DGGML_AVX2=$(call has,avx2) \
	-DGGML_FMA=$(call has,fma) -DGGML_F16C=$(call has,f16c) -DGGML_AVX512=$(call has,avx512f) \
	-DGGML_AVX512_VNNI=$(call has,avx512_vnni) -DGGML_AVX512_BF16=$(call has,avx512_bf16) \
	-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAMA_BUILD_TOOLS=OFF \
	-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF
# Built anew each time (no cached wheel: it may hold another machine's instructions).
llama: $(STAMP)
	$(BIN)/pip uninstall --quiet --yes llama-cpp-python
	CMAKE_BUILD_PARALLEL_LEVEL=2 CMAKE_ARGS="$(LLAMA_CMAKE)" \
		$(BIN)/pip install --quiet --no-cache-dir -e '.[llama]'

clean:
	rm -rf $(VENV) data
