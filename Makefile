# Two commands do everything on a fresh machine:
#   make book   set up .venv if needed, build the book offline, say where to open it
#   make test   set up .venv if needed, run every test (unit tests, notebooks, built book in a browser)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: book test serve lab clean chromium

# The virtual environment is rebuilt only when the pinned requirements change.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# nbgrader 0.9.6 in an environment of its own, for tests/test_nbgrader.py: it grades the
# chapters on a kernel that is the course's .venv, and stays out of the reader's JupyterLab.
NBGRADER_VENV := .venv-nbgrader
$(NBGRADER_VENV)/.installed: requirements-nbgrader.txt
	test -x $(NBGRADER_VENV)/bin/python || $(PYTHON) -m venv $(NBGRADER_VENV)
	$(NBGRADER_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-nbgrader.txt
	touch $@

book: $(VENV)/.installed
	bash scripts/build_book.sh
	@echo
	@echo "The book is built. Open it in a browser:"
	@echo "  file://$(CURDIR)/_build/html/index.html"
	@echo "or serve it with:  make serve   (http://localhost:8000)"

serve:
	$(BIN)/python -m http.server 8000 --bind 127.0.0.1 --directory _build/html

lab: $(VENV)/.installed
	$(BIN)/jupyter lab notebooks/

# Debian's chromium drives the browser tests of the built book.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests (needs root)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: $(VENV)/.installed $(NBGRADER_VENV)/.installed chromium
	$(BIN)/python -m pytest tests
	$(BIN)/python -m pytest --nbval notebooks --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-current-env --nbval-cell-timeout=300 -p no:cacheprovider

clean:
	rm -rf _build
