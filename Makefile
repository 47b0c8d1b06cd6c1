# Entry points for people and CI. `make test` is the one test command (README, .ci/run).
.PHONY: setup test lint bench demo demo-clean vagrant-test

setup:
	scripts/setup-dev.sh

test: setup
	.venv/bin/python -m pytest -q -ra

# tests/test_lint.py runs the same three inside `make test` (CI runs only that).
lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/vermin -q -t=3.6- --violations --no-tips installer/

bench: setup
	.venv/bin/python bench/run_all.py

vagrant-test:
	$(MAKE) -C vagrant vagrant-test BUNDLE=$(abspath $(BUNDLE))

demo: setup
	.venv/bin/python tests/e2e/demo.py

demo-clean: setup
	.venv/bin/python tests/e2e/demo.py clean
