# The commands the README names. Everything installs into ./.venv; test servers come from Debian.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test bench install test-servers lint clean

demo: install ## Run the platform's demo on the embedded default (broker, pipeline, SQLite)
	$(BIN)/calstream demo $(ARGS)

test: install test-servers ## Install what the tests need, check the layers, run the whole suite
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install test-servers ## End-to-end throughput through a real mosquitto
	$(BIN)/calstream bench $(ARGS)

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

test-servers: ## The servers the tests start: Debian packages, and Apache Kafka's jars from Maven Central
	scripts/install-test-servers.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) calstream-work .pytest_cache .mypy_cache .ruff_cache
