# Shortcuts; the README has the two set-up commands.
.PHONY: test lint serve bench build

test:
	python -m pytest

lint:
	ruff check . && ruff format --check . && mypy

serve:
	python -m server serve

bench:
	python bench/ingest.py

build:
	npm run build
