# StepEdit: `make demo` does a real edit on the embedded backend; `make test` runs everything.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
DEBS   := liblo-tools lua5.4 lua-socket lua-busted lua-check lua-dkjson
PORT   ?= 9311

.PHONY: demo test lint bench venv deps-test debs clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -e .
	touch $@

# The tests also exercise the stepaudio backend: the CPU build of torch goes in first, because
# a bare `torch` requirement would pull a multi-GB CUDA build.
$(VENV)/.installed-test: $(VENV)/.installed requirements-multilingual.txt
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps --require-hashes -r requirements-multilingual.txt
	$(PIP) install -q -e '.[stepaudio,eval,test,multilingual]'
	$(PIP) install -q --no-deps resemblyzer==0.1.4
	touch $@

venv: $(VENV)/.installed

debs:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing; \
	fi

demo: $(VENV)/.installed
	@mkdir -p out
	@$(VENV)/bin/stepedit serve --port $(PORT) & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null' EXIT; \
	for i in $$(seq 1 100); do $(VENV)/bin/stepedit ping --engine 127.0.0.1:$(PORT) --timeout 0.3 >/dev/null 2>&1 && break; sleep 0.2; done; \
	$(VENV)/bin/stepedit ping --engine 127.0.0.1:$(PORT) && \
	for edit in "--denoise" "--speed faster" "--emotion happy" "--style whisper --iterations 2"; do \
	  echo "stepedit edit tests/data/en_ljspeech_LJ050-0131.wav $$edit  (over OSC)"; \
	  $(VENV)/bin/stepedit edit tests/data/en_ljspeech_LJ050-0131.wav $$edit -o out --engine 127.0.0.1:$(PORT) || exit 1; \
	done && \
	echo "stepedit transcribe tests/data/en_ljspeech_LJ050-0131.wav  (the words, over OSC)" && \
	said=$$($(VENV)/bin/stepedit transcribe tests/data/en_ljspeech_LJ050-0131.wav -o out -q --engine 127.0.0.1:$(PORT) --timeout 10 2>/dev/null) && \
	echo "  $$said" && \
	echo "stepedit edit ... --as-text  (the same words without \"formal\")" && \
	$(VENV)/bin/stepedit edit tests/data/en_ljspeech_LJ050-0131.wav --text "$$said" --as-text "$$(echo "$$said" | sed 's/ formal / /')" -o out --engine 127.0.0.1:$(PORT) --timeout 10

test: $(VENV)/.installed-test debs
	$(VENV)/bin/ruff check engine bridge tests bench
	$(VENV)/bin/ruff format --check engine bridge tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check engine bridge tests bench
	$(VENV)/bin/ruff format --check engine bridge tests bench
	$(VENV)/bin/mypy

bench: $(VENV)/.installed-test
	$(PY) bench/bench_engine.py
	$(PY) bench/bench_stepaudio.py
	$(PY) bench/bench_transcribe.py
	$(PY) bench/bench_text_edit.py
	$(PY) bench/bench_fuzz.py
	$(PY) bench/bench_load.py

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache .ruff_cache .mypy_cache
