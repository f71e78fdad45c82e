# learnlib course: `make train` and `make test` create .venv and install on first use.
#
# CPU (laptop, CI): the defaults install PyTorch's CPU-friendly pin below.
# GPU: `make install TORCH=torch EXTRAS=course,paddle,mesh,dev,gpu`, or follow the README.

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
EXTRAS ?= course,paddle,mesh,dev
ARGS   ?=
# ARGS reaches Python as typed: exported unexpanded and split into words there (learnlib/tools/make_args.py)
export MAKE_ARGS = $(value ARGS)
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(subst /,_,$(subst =,_,$(TORCH)))-$(subst $(comma),_,$(EXTRAS))
comma  := ,

NOTEBOOKS := $(wildcard notebooks/*.ipynb) $(wildcard solutions/*.ipynb)

.PHONY: install train test test-slow test-browser lab notebooks exercises benchmarks gpu-check clean help

help:
	@echo "make train       train the default experiment (ARGS='experiment=NAME key=value ...')"
	@echo "make test        unit tests + every notebook and solution under pytest --nbval"
	@echo "make test-slow   the slow tests (retraining the stored checkpoints)"
	@echo "make test-browser chapters 00 and 08 run in JupyterLab in headless Chromium (apt: chromium chromium-driver)"
	@echo "make lab         JupyterLab on the course"
	@echo "make notebooks   re-execute and store every notebook and solution, then regenerate exercises"
	@echo "make exercises   regenerate exercises/ from solutions/"
	@echo "make benchmarks  run the CPU benchmarks and append to benchmarks/RESULTS.md"
	@echo "make gpu-check   on CUDA: benchmarks/bench_gpu.py and the GPU tests, all in OUT/gpu_check.md (< 10 min on one H100)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	$(BIN)/python -m pip install --quiet --no-deps "lpips==0.1.4"  # LPIPS heads only (its torchvision dep is not used)
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(BIN)/python -m learnlib.tools.make_args learnlib.train

test: $(STAMP)
	$(BIN)/python -m learnlib.tools.make_args pytest

test-slow: $(STAMP)
	$(BIN)/python -m learnlib.tools.make_args pytest tests -p no:nbval -o addopts="-ra" -m slow

# Not part of `make test`: needs Debian's chromium and chromium-driver and the browser extra (selenium).
BROWSER_STAMP := $(VENV)/.browser-extra
$(BROWSER_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[browser]"
	touch $(BROWSER_STAMP)

test-browser: $(BROWSER_STAMP)
	$(BIN)/python -m learnlib.tools.browser notebooks/00_pytorch_fundamentals.ipynb \
	  notebooks/08_structured_latent_vae.ipynb --expect-widgets 00_pytorch_fundamentals.ipynb --out runs/browser

lab: $(STAMP)
	$(BIN)/jupyter lab

notebooks: $(STAMP)
	export LEARNLIB_PROGRESS=off; cd notebooks && for nb in *.ipynb; do \
	  ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=900 --ExecutePreprocessor.record_timing=False "$$nb" || exit 1; done
	export LEARNLIB_PROGRESS=off; cd solutions && for nb in *.ipynb; do \
	  ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=900 --ExecutePreprocessor.record_timing=False "$$nb" || exit 1; done
	$(MAKE) exercises

exercises: $(STAMP)
	$(BIN)/python -m learnlib.tools.exercises

benchmarks: $(STAMP)
	for script in benchmarks/bench_*.py; do \
	  [ "$$script" = benchmarks/bench_gpu.py ] || $(BIN)/python "$$script" || exit 1; done

gpu-check: $(STAMP)
	$(BIN)/python benchmarks/bench_gpu.py $(or $(OUT),gpu-check) --append-results $(ARGS)

clean:
	rm -rf runs notebooks/runs solutions/runs .pytest_cache
