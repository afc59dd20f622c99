# Two entry points for a fresh machine (see README):
#   make demo   installs ShotWatch into .venv and runs `shotwatch demo`
#   make test   installs it with the dev tools, starts the local services, runs every gate
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test install install-dev lint typecheck pytest services clean

$(VENV)/.base: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -e .
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.base
	$(PIP) install -e '.[dev]'
	touch $@

install: $(VENV)/.base
install-dev: $(VENV)/.dev

demo: install
	$(VENV)/bin/shotwatch demo

services:
	bash scripts/system-deps.sh
	bash scripts/services.sh

lint: install-dev
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: install-dev
	$(VENV)/bin/mypy

pytest: install-dev services
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
