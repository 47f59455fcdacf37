# Two commands build and test everything from a fresh clone (see README.md):
#   make book   -> _build/html/index.html
#   make test   -> pytest: unit and property tests, then every notebook under nbval
# Both create .venv and install the pinned packages, bptt_lib and MathJax on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MATHJAX := _mathjax/mathjax/tex-chtml.js

.PHONY: book test student execute clean install

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
	$(BIN)/python -m pytest -n 2 --dist loadfile tests book \
	    --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

# The student edition: solutions stubbed, outputs cleared, written to student/.
student: $(STAMP)
	$(BIN)/python -m bptt_lib.student_edition --book book --out student

# For authors: re-execute every chapter in place so that stored outputs are fresh.
execute: $(STAMP)
	$(BIN)/python tests/execute_notebooks.py book/*.ipynb

clean:
	rm -rf _build _mathjax student node_modules
