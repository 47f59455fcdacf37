# Two commands build and test everything from a fresh clone (see README.md):
#   make book   -> _build/html/index.html
#   make test   -> pytest: unit and property tests, then every notebook under nbval;
#                  then every notebook again under nbval on simulated other machines
#                  (other OpenBLAS kernels, one thread, tanh/exp/log off by one ulp);
#                  then, after `make book`, a second build that must give the same HTML
# Both create .venv and install the pinned packages, bptt_lib and MathJax on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MATHJAX := _mathjax/mathjax/tex-chtml.js

# nbval: strict comparison of stored outputs. A busy machine may need long to start a kernel
# (the default, 60 s, loses a whole notebook); a cell that hangs still fails within 10 min.
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
         --nbval-kernel-startup-timeout 300 --nbval-cell-timeout 600

.PHONY: book test portability reproducible student execute clean install

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

$(MATHJAX): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	rm -rf _mathjax && mkdir -p _mathjax
	cp -r node_modules/mathjax/es5 _mathjax/mathjax

book: $(STAMP) $(MATHJAX)
	rm -rf _build
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile tests book $(NBVAL)
	$(MAKE) --no-print-directory portability
	$(MAKE) --no-print-directory reproducible

# Stored outputs hold on other machines: nbval once per condition of tests/portability/run.py
# (OPENBLAS_CORETYPE=Haswell, Sandybridge on one thread, Prescott; a one-ulp libm).
portability: $(STAMP)
	$(BIN)/python tests/portability/run.py -n 2 --dist loadfile $(NBVAL) book

# Builds are reproducible: build again beside `make book`'s _build/html and compare the pages
# (tests/compare_builds.py). Needs the first build; without it, says so and does nothing.
reproducible: $(STAMP)
	@if [ -f _build/html/index.html ]; then \
	    rm -rf _build/second && \
	    $(BIN)/jupyter-book build . --path-output _build/second -W -n --keep-going -q && \
	    $(BIN)/python tests/compare_builds.py _build/html _build/second/_build/html; \
	else echo "reproducible: no first build in _build/html (run make book first): not checked"; fi

# The student edition: solutions stubbed, outputs cleared, written to student/.
student: $(STAMP)
	$(BIN)/python -m bptt_lib.student_edition --book book --out student

# For authors: re-execute every chapter in place so that stored outputs are fresh.
execute: $(STAMP)
	$(BIN)/python tests/execute_notebooks.py book/*.ipynb

clean:
	rm -rf _build _mathjax student node_modules
