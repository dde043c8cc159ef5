# The verbs a newcomer needs. `make` builds its own virtual environment: nothing is installed by hand.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8501

.PHONY: install run test demo lint format browser bench clean-data

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: install
	$(VENV)/bin/streamlit run app/Home.py --server.port $(PORT) --server.headless true

# Browser tests need Debian's chromium; install it when missing (as root, like CI).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "chromium missing: run 'sudo apt-get install chromium' for the browser tests"; fi; \
	fi

test: install browser
	$(PY) -m pytest -n 2 --dist loadfile

demo: install
	$(PY) -m synthetic casting --out data/casting --n 2000 --seed 0
	$(PY) -m synthetic melting --out data/melting.csv --seed 0

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) benchmarks/cam_speed.py

clean-data:
	rm -rf data
