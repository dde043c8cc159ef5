# The verbs a newcomer needs. `make` builds its own virtual environment: nothing is installed by hand.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8501

.PHONY: install run test test-fast docs demo lint format browser postgres serve bench learning-curve study clean-data

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

# The line service on the demo runs (docs/serve.md); needs DEFECTLENS_API_TOKEN in the environment.
SERVE_PORT ?= 8000
serve: install
	$(PY) -m serve --classifier demo_flip --autoencoder demo_anomaly --port $(SERVE_PORT)

# The review-log tests start a throwaway PostgreSQL server; install Debian's when missing.
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
		else echo "postgresql missing: run 'sudo apt-get install postgresql' for the review-log tests"; fi; \
	fi

test: install browser postgres
	$(PY) -m pytest -n 2 --dist loadfile

# The quick lane while you work: everything but the tests marked slow (training, browsers,
# real clusters, demo-data regeneration). `make test` still runs everything and is what CI runs.
test-fast: install postgres
	$(PY) -m pytest -n 2 --dist loadfile -m "not slow"

# docs/cli.md is generated from the CLIs' parsers (a test fails when it is out of date).
docs: install
	UPDATE_CLI_DOCS=1 $(PY) -m pytest -q tests/test_cli_reference.py

# Demo data and runs: the committed weights/demo_* and samples/ are rebuilt by this target.
# flip is the demo recipe and is trained last, so the dashboard opens on it (newest run first).
DEMO_RECIPES ?= basic noise heavy crop flip
DEMO_CLS_ARGS ?= --model simple_cnn --img-size 160 --epochs 20 --patience 20 --lr 1e-3 --schedule cosine --seed 0
# A real backbone for the explanation pages: MobileNetV2 (width 0.35, no ImageNet weights),
# trained before the recipes so flip stays the newest run.
DEMO_MNV2_ARGS ?= --model mobilenetv2 --alpha 0.35 --weights none --img-size 96 --aug flip --epochs 5 --patience 5 --batch-size 16 --lr 3e-3 --schedule cosine --seed 0
# The anomaly demo is PatchCore on the features of demo_flip (trained just before it; see docs/anomaly.md).
DEMO_ANOMALY_ARGS ?= --model patchcore --backbone-run demo_flip --img-size 160 --coreset 1000 --feature-dim 64 --sigma 2 --seed 0

demo: install
	$(PY) -m synthetic casting --out data/casting --n 2000 --seed 0 --overwrite
	$(PY) -m synthetic casting --out samples/casting --n 48 --seed 1 --overwrite
	$(PY) -m synthetic melting --out data/melting.csv --rows 300000 --seed 0
	rm -rf weights/demo_*
	$(PY) classification/train.py --data data/casting --name demo_mobilenetv2 $(DEMO_MNV2_ARGS)
	for aug in $(DEMO_RECIPES); do \
		$(PY) classification/train.py --data data/casting --aug $$aug --name demo_$$aug $(DEMO_CLS_ARGS) || exit 1; \
	done
	$(PY) -m classification.boxhead --run demo_flip --data data/casting
	$(PY) anomaly/train.py --data data/casting --name demo_anomaly $(DEMO_ANOMALY_ARGS)
	$(PY) meltingtank/train.py --csv data/melting.csv --name demo_lstm --epochs 15 --patience 4 --batch-size 256
	$(PY) -m synthetic sheet --out docs/images/synthetic_casting.png

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint Dockerfile

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) benchmarks/cam_speed.py

# The heatmap study (issue #16): each demo recipe trained again with seeds 1 and 2 (seed 0 is
# the committed demo run) into weights/study/ (not committed), then every run's heatmaps
# measured on the test split: localization, faithfulness, 95 % intervals over images and seeds,
# paired tests between recipes. Writes weights/heatmap_study.json (committed; the Augmentation
# Comparison page shows it). About an hour on 2 idle cores; runs already trained are kept.
STUDY_SEEDS ?= 1 2
study: install
	test -d data/casting || $(PY) -m synthetic casting --out data/casting --n 2000 --seed 0
	for seed in $(STUDY_SEEDS); do for aug in $(DEMO_RECIPES); do \
		test -f weights/study/study_$${aug}_s$$seed/run.json || \
		DEFECTLENS_WEIGHTS=weights/study $(PY) classification/train.py --data data/casting \
			--aug $$aug --name study_$${aug}_s$$seed $(DEMO_CLS_ARGS) --seed $$seed || exit 1; \
	done; done
	$(PY) -m explain.study --data data/casting --runs $(addprefix weights/demo_,$(DEMO_RECIPES)) \
		weights/study/study_* --cache weights/study/measured --out weights/heatmap_study.json

# Demo recipe on 120 ... 1,920 synthetic parts, 3 seeds, on labels alone and with mask
# supervision where train.py adds it (hours on 2 cores; resumes if stopped).
learning-curve: install
	$(PY) benchmarks/learning_curve.py --masks off
	$(PY) benchmarks/learning_curve.py --masks auto --sizes 120 240 480

clean-data:
	rm -rf data
