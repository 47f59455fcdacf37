# Two commands build and test everything from a fresh clone (see README.md; once per machine
# first: .ci/install-system-packages, for TeX and Chromium):
#   make book   -> _build/html/index.html and the PDF it links to, _build/html/bptt-derived.pdf
#   make test   -> ruff; pytest: unit and property tests, the PDF's and the browser tests,
#                  then every notebook under nbval;
#                  then every notebook again under nbval on simulated other machines
#                  (other OpenBLAS kernels, one thread, tanh/exp/log off by one ulp);
#                  then, after `make book`, a second build that must give the same HTML
# Both create .venv and install the pinned packages, bptt_lib and MathJax on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Python 3.11 or newer. The stamp names the Python version, so a .venv made by another Python
# (or another version of it) is rebuilt on the next command.
PY_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)
STAMP  := $(VENV)/.installed-python-$(PY_VERSION)
MATHJAX := _mathjax/mathjax/tex-chtml.js

# nbval: strict comparison of stored outputs. A busy machine may need long to start a kernel
# (the default, 60 s, loses a whole notebook); a cell that hangs still fails within 10 min.
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
         --nbval-kernel-startup-timeout 300 --nbval-cell-timeout 600

.PHONY: book html book-fast pdf test lint portability reproducible student execute lab run clean distclean install

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml etc/ipython_kernel_config.py
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
	    { echo "make: Python 3.11 or newer is needed; '$(PYTHON)' is: $$($(PYTHON) --version 2>&1)" >&2; \
	      echo "make: run e.g. 'make PYTHON=python3.11 book'" >&2; exit 1; }
	@if [ -f $(VENV)/pyvenv.cfg ] && ! grep -qx "version = $(PY_VERSION)" $(VENV)/pyvenv.cfg; then \
	    echo "make: $(VENV) was made by another Python; rebuilding it with $(PYTHON) $(PY_VERSION)"; \
	    rm -rf $(VENV); fi
	@echo "make: creating $(VENV) with $(PYTHON) $(PY_VERSION)"
	$(PYTHON) -m venv $(VENV)
	@echo "make: installing the pinned packages of requirements.txt (about a minute, 600 MB, once)"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@echo "make: installing bptt_lib (editable)"
	$(BIN)/python -m pip install --quiet --no-deps -e .
	mkdir -p $(VENV)/etc/ipython
	cp etc/ipython_kernel_config.py $(VENV)/etc/ipython/ipython_kernel_config.py
	touch $(STAMP)

$(MATHJAX): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	rm -rf _mathjax && mkdir -p _mathjax
	cp -r node_modules/mathjax/es5 _mathjax/mathjax

# The website and the PDF it links to (the PDF needs the TeX packages of .ci/debian-packages.txt;
# `make html` builds the website alone).
book: html
	@$(MAKE) --no-print-directory pdf
	@echo "The book is at $(CURDIR)/_build/html/index.html (PDF: _build/html/bptt-derived.pdf)"

html: $(STAMP) $(MATHJAX)
	rm -rf _build
	@echo "make: executing every chapter and building the HTML (a few minutes)"
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The website is at $(CURDIR)/_build/html/index.html"

# For authors: rebuild reusing the execution of unchanged notebooks (jupyter-cache in
# _build/.jupyter_cache). `make book` and CI always execute every notebook afresh.
book-fast: $(STAMP) $(MATHJAX)
	@# The copy sits beside _config.yml: local extensions (_ext/) are found relative to it.
	sed 's/^  execute_notebooks: force$$/  execute_notebooks: cache/' _config.yml > .book-fast.yml
	@grep -q 'execute_notebooks: cache' .book-fast.yml || { echo "make: _config.yml has no 'execute_notebooks: force' line" >&2; exit 1; }
	$(BIN)/jupyter-book build . --config .book-fast.yml -W -n --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# The PDF: Sphinx's LaTeX builder and xelatex (needs the Debian TeX packages named in README.md).
# It typesets the notebooks' stored outputs (which `make test` checks against fresh runs): no
# execution and no HTML build needed. The LaTeX log is _build/latex/bptt-derived.log.
# The toc without the page "genindex" (in the PDF, LaTeX prints the index; a link to that page
# then names no document, hence ref.doc is not a warning here: the HTML build checks those links).
pdf: $(STAMP)
	sed -e 's/^  execute_notebooks: force$$/  execute_notebooks: "off"/' \
	    -e 's/^  config:$$/  config:\n    suppress_warnings: [ref.doc]/' _config.yml > .book-pdf.yml
	@grep -q 'execute_notebooks: "off"' .book-pdf.yml && grep -q 'suppress_warnings' .book-pdf.yml || \
	    { echo "make: _config.yml has no 'execute_notebooks: force' or no sphinx 'config:' line" >&2; exit 1; }
	sed '/^ *- file: genindex$$/d' _toc.yml > .book-pdf-toc.yml
	rm -rf _build/latex
	@echo "make: writing the LaTeX and running xelatex (about a minute)"
	LATEXOPTS="-interaction=nonstopmode -halt-on-error" $(BIN)/jupyter-book build . \
	    --config .book-pdf.yml --toc .book-pdf-toc.yml --builder pdflatex -W -n --keep-going -q
	@test -f _build/latex/bptt-derived.pdf || { echo "make: no _build/latex/bptt-derived.pdf" >&2; exit 1; }
	@if [ -d _build/html ]; then cp _build/latex/bptt-derived.pdf _build/html/bptt-derived.pdf && \
	    echo "make: copied to $(CURDIR)/_build/html/bptt-derived.pdf"; fi
	@echo "The PDF is at $(CURDIR)/_build/latex/bptt-derived.pdf"

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadfile tests book $(NBVAL)
	$(MAKE) --no-print-directory portability
	$(MAKE) --no-print-directory reproducible

# The library, the tests and the chapters' code (pyproject.toml: [tool.ruff]).
lint: $(STAMP)
	$(BIN)/ruff check .

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

# For readers: JupyterLab on working copies of the chapters in build/notebooks/ (made once, then
# kept: a reader's edits survive, and the tracked notebooks in book/ are never rewritten).
# `make lab CHAPTER=ch05_total_loss` opens that chapter; jupyterlab-myst renders the MyST.
lab: $(STAMP)
	@mkdir -p build/notebooks
	@for nb in book/*.ipynb; do [ -e build/notebooks/$${nb#book/} ] || cp $$nb build/notebooks/; done
	$(BIN)/jupyter lab --notebook-dir=build/notebooks $(if $(CHAPTER),build/notebooks/$(CHAPTER).ipynb)

# For readers without a browser: execute one chapter into build/executed/ (book/ untouched).
run: $(STAMP)
	@test -n "$(CHAPTER)" || { echo "make: say which chapter, e.g. make run CHAPTER=ch01_unrolling" >&2; exit 1; }
	@test -f book/$(CHAPTER).ipynb || { echo "make: no chapter book/$(CHAPTER).ipynb; chapters: $$(cd book && ls *.ipynb | sed 's/.ipynb//' | tr '\n' ' ')" >&2; exit 1; }
	$(BIN)/jupyter nbconvert --to notebook --execute book/$(CHAPTER).ipynb --output-dir build/executed
	@echo "The executed chapter is at $(CURDIR)/build/executed/$(CHAPTER).ipynb"

# For authors: re-execute every chapter in place so that stored outputs are fresh.
execute: $(STAMP)
	$(BIN)/python tests/execute_notebooks.py book/*.ipynb

# build/ (a reader's working copies of the chapters, make lab / make run) is left alone.
clean:
	rm -rf _build _mathjax student node_modules .book-fast.yml .book-pdf.yml .book-pdf-toc.yml

# Also the environment: the next command reinstalls it.
distclean: clean
	rm -rf $(VENV)
