# Two entry points (README): `make demo` (main job on the embedded digits data) and `make test`.
# Both create .venv on first use and install the pinned stack; later runs reuse it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lrd-installed
export GLOG_v := 3

.PHONY: setup demo test clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch pinned by itself first: a looser requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[torch,mindspore,test]"
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/lrd demo --out runs/demo

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf runs rank_0 .pytest_cache
