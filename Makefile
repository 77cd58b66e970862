# AIGC: Principles and Code (AIGC原理与代码实例讲解)
#
#   make book        build the HTML book into _build/html, executing every chapter
#   make test        lint, unit tests, the book with -W (every chapter executed once, a
#                    failed check fails it), and the built book checked (launch links,
#                    offline assets, the execution report, every page in Chromium)
#   make nbval       every chapter under nbval (pytest), on its own
#   make notebooks   convert chapters/*.py (Jupytext py:percent) into build/notebooks/*.ipynb
#   make vendor      install MathJax and mermaid (npm) so that the book renders offline
#   make clean       remove build outputs and caches (make distclean also removes .venv)
#
# `make book` and `make test` install what they need into .venv on first use (see
# scripts/install.sh). Settings: PYTHON, VENV, TORCH_SPEC, TORCH_INDEX_URL, e.g.
#   make test TORCH_INDEX_URL=<a CPU-only torch wheel index>

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=
export PYTHON VENV TORCH_SPEC TORCH_INDEX_URL

BIN := $(VENV)/bin
STAMP := $(VENV)/.aigc-book-installed
CHAPTERS := $(sort $(wildcard chapters/*.py))
NOTEBOOK_DIR := build/notebooks
REPORTS := build/reports
RECORD := $(REPORTS)/steps.tsv
STEP := bash scripts/step.sh $(RECORD)

# Flags for `make book`; `make test` always builds with -W --keep-going.
JB_FLAGS ?=
# Per-cell limit for the notebook tests, as for the book build (_config.yml execute.timeout).
NBVAL_CELL_TIMEOUT ?= 1200

# Keep Jupyter's kernels and data inside the environment: the python3 kernel that the book
# build and nbval start is then the environment's own interpreter.
export JUPYTER_PREFER_ENV_PATH := 1
# Silence debugpy's "frozen modules" notice when kernels start.
export PYDEVD_DISABLE_FILE_VALIDATION := 1

# The built-book tests: they need `_build/html` and run after the build (`make book-check`).
BOOK_TESTS := tests/test_built_book.py tests/test_browser.py
# MathJax and mermaid, pinned in package-lock.json; scripts/book_publishing.py serves them.
VENDOR := scripts/vendor
VENDOR_STAMP := $(VENDOR)/node_modules/.package-lock.json

.PHONY: help install vendor book test notebooks lint unit nbval book-strict book-fresh book-check clean \
	distclean

help:
	@sed -n '3,10p' Makefile | sed 's/^# //'

# ---------------------------------------------------------------- environment
install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml scripts/install.sh
	@start=$$(date +%s); \
	bash scripts/install.sh; \
	touch $@; \
	echo "[install] done in $$(( $$(date +%s) - start )) s"

# ---------------------------------------------------------------- offline assets
# Without npm (or when `npm ci` fails) the book still builds, loading MathJax and mermaid from
# a CDN, and the build warns; `make test` (-W) then fails and says why.
vendor: $(VENDOR_STAMP)

$(VENDOR_STAMP): $(VENDOR)/package.json $(VENDOR)/package-lock.json
	@if ! command -v npm >/dev/null 2>&1; then \
	    echo "make vendor: npm not found; the book will load MathJax and mermaid from a CDN" \
	         "(install Node.js with npm, then run make vendor, for a book that renders offline)"; \
	elif npm ci --prefix $(VENDOR) --ignore-scripts --no-audit --no-fund --loglevel=error; then \
	    touch $@; \
	    echo "make vendor: MathJax and mermaid installed into $(VENDOR)/node_modules"; \
	else \
	    echo "make vendor: npm ci failed; the book will load MathJax and mermaid from a CDN"; \
	fi

# ---------------------------------------------------------------- the book
book: install vendor
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo "The book is in _build/html/index.html"

# ---------------------------------------------------------------- notebooks
notebooks: install
	@rm -rf $(NOTEBOOK_DIR)
	@mkdir -p $(NOTEBOOK_DIR)
	@for src in $(CHAPTERS); do \
	    $(BIN)/jupytext --quiet --to ipynb --output $(NOTEBOOK_DIR)/$$(basename $$src .py).ipynb $$src; \
	done
	@echo "$(words $(CHAPTERS)) chapter(s) converted into $(NOTEBOOK_DIR)/"

# ---------------------------------------------------------------- tests
# Each step runs even when an earlier one failed; `make test` fails if any step failed.
test: install
	@rm -rf $(REPORTS) && mkdir -p $(REPORTS)
	@status=0; \
	$(STEP) "lint (ruff)" $(MAKE) lint || status=1; \
	$(STEP) "unit tests (pytest tests)" $(MAKE) unit || status=1; \
	$(STEP) "book, every chapter executed (jupyter-book -W)" $(MAKE) book-fresh || status=1; \
	$(STEP) "built book and browser (pytest)" $(MAKE) book-check || status=1; \
	$(BIN)/python scripts/test_summary.py $(RECORD) $(REPORTS)/unit.xml $(REPORTS)/book.xml; \
	if [ $$status -ne 0 ]; then echo "make test: FAILED (see the steps above)"; fi; \
	exit $$status

lint: install
	$(BIN)/ruff check diffusion_lib tests chapters scripts

unit: install
	$(BIN)/python -m pytest tests $(addprefix --ignore=,$(BOOK_TESTS)) --junitxml=$(REPORTS)/unit.xml

# nbval runs each notebook in a kernel of this environment (--nbval-current-env); the
# notebooks' folder has no conftest.py and pytest's rootdir stays the repository (pyproject).
nbval: notebooks
	@if [ -z "$(CHAPTERS)" ]; then echo "no chapters to test"; exit 0; fi; \
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env \
	    --nbval-cell-timeout=$(NBVAL_CELL_TIMEOUT) -p no:cacheprovider \
	    --junitxml=$(REPORTS)/notebooks.xml $(NOTEBOOK_DIR)

book-strict: install vendor
	$(BIN)/jupyter-book build . -W --keep-going

# What `make test` builds: every page read again (--all) and every notebook executed again (its
# execution cache emptied), so each chapter runs exactly once, against the library as it is
# now. A failing cell, e.g. a failed check(...), fails the build (-W) and shows its traceback;
# the execution report then marks the page, which `make book-check` fails on.
book-fresh: install vendor
	rm -rf _build/.jupyter_cache _build/.jupyter_cache-shift-*
	$(BIN)/jupyter-book build . -W --keep-going --all

# The built book: every notebook page's Colab/Binder link opens a notebook the build produced,
# no page loads a script from another host, the execution report (test_built_book.py); every
# page in headless Chromium, with screenshots in _build/screenshots/ (test_browser.py). Without
# a book, Chromium or Playwright these skip, unless AIGC_REQUIRE_BOOK_CHECKS=1 (as in CI).
book-check: install
	$(BIN)/python -m pytest $(BOOK_TESTS) -p no:cacheprovider --junitxml=$(REPORTS)/book.xml

# ---------------------------------------------------------------- cleaning
clean:
	rm -rf _build build .pytest_cache .ruff_cache .jupyter_cache *.egg-info
	find . -path './.*' -prune -o \
	    \( -name __pycache__ -o -name .ipynb_checkpoints \) -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(VENDOR)/node_modules
