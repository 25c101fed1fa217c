# Vuoro: `make run` starts the demo, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STATE ?= var
PREFIX ?= /opt/vuoro
DESTDIR ?=

.PHONY: run run-standalone test bench bench-check soak mutation venv lint format screenshots i18n install clean help

help:
	@echo "make run          the demo: server, sync daemon, kiosk window, printer emulator ($(STATE)/)"
	@echo "make run-standalone  the kiosk alone, numbering its own tickets"
	@echo "make test         the whole test suite, WORKERS=4 in parallel (installs what it needs)"
	@echo "make bench        the benchmarks: figures, targets, verdicts (table + var/bench/latest.json)"
	@echo "make bench-check  the benchmarks, failing when a figure falls short of its target"
	@echo "make venv         create or update $(VENV)/ with every extra"
	@echo "make soak         200 seeded fault-injection runs (SEEDS=n for fewer), then a long API fuzz (FUZZ_EXAMPLES=n)"
	@echo "make mutation     mutation testing of the promise-keeping modules (score table + var/mutation/)"
	@echo "make lint         ruff and the import-layer contracts"
	@echo "make screenshots  regenerate docs/*.png and docs/screens/ (every screen, language, mode; contrast-checked) from the real app"
	@echo "make i18n         extract the messages, update every language's PO file, compile them"
	@echo "make install      the appliance: app in $(PREFIX)/venv, units, rules, config (DESTDIR= to stage)"

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); tools/sysdeps.sh venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -e '.[server,test]' \
		|| $(PY) -m pip install --quiet -e '.[server,test]'
	$(PY) -m catalogue compile
	@touch $@

run: venv
	@tools/sysdeps.sh run
	$(PY) tools/demo.py --state-dir $(STATE)

run-standalone: venv
	@tools/sysdeps.sh run
	$(PY) tools/demo.py --state-dir $(STATE) --standalone

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Tests mostly wait (processes, sockets, screens, browsers), so more workers than
# cores pays. Each test module stays on one worker (--dist loadfile): a module's
# tests share its fixtures (one server, one staged install) and run in order.
# Modules are handed out in collection order, the longest first
# (tests/conftest.py LONGEST_FIRST), not xdist's most-tests-first: a long
# module of one test would otherwise start last and run alone at the end.
# The real Kivy app's tests (marker `ui`) come after, two modules at a time,
# each kiosk on an Xvfb screen of its own: beside four busy workers on two
# cores a kiosk's screen lags the taps and its timers fire late, but two kiosks
# that mostly wait for each other's conditions (never a fixed sleep) keep up.
WORKERS ?= 4
UI_WORKERS ?= 2

# The tests start hundreds of Python processes (servers, their workers, sync
# daemons, kiosks): each would compile its modules again where the environment
# says not to write bytecode (PYTHONDONTWRITEBYTECODE), so it is written once here.
PACKAGES := appliance bench catalogue kiosk printer server speech sync tests tools

test: venv
	@tools/sysdeps.sh test
	$(MAKE) --no-print-directory lint
	$(PY) -m compileall -q -j 0 $(PACKAGES)
	$(PY) -m pytest -q -n $(WORKERS) --dist loadfile --no-loadscope-reorder -m "not ui" --durations=25
	$(PY) -m pytest -q -n $(UI_WORKERS) --dist loadfile --no-loadscope-reorder -m ui --durations=10

bench: venv
	@tools/sysdeps.sh test
	VUORO_BENCH=full $(PY) -m pytest -q -s bench

# Not part of `make test`: the tiny run there proves the benchmarks work, not their speed.
bench-check: bench
	$(PY) -m bench.targets --check

soak: venv
	$(PY) -m bench.soak --seeds $(or $(SEEDS),200)
	VUORO_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),300) $(PY) -m pytest -q --timeout=0 tests/test_openapi_fuzz.py

# Not part of `make test`: mutmut, one worker, the fast tests only (setup.cfg [mutmut]).
# It resumes where it left off; FRESH=1 forgets earlier results, MODULES="sync/exchange.py ..." runs only those.
$(VENV)/.mutation: $(STAMP)
	$(PY) -m pip install --quiet -e '.[server,test,mutation]'
	@touch $@

mutation: $(VENV)/.mutation
	$(PY) tools/mutation.py $(if $(FRESH),--fresh) $(MODULES)

screenshots: venv
	@tools/sysdeps.sh test
	$(PY) -m tests.kiosk_driver screenshots docs
	$(PY) -m tests.screens docs/screens
	VUORO_SCREENSHOTS=docs $(PY) -m pytest -q -m screenshot

# The one translation catalogue (catalogue/locale, README "Translations"): the
# template from the sources (babel.cfg), each language's PO updated from it
# (translations kept, new messages empty, changed ones fuzzy), then the .mo files.
# The keywords are catalogue.KEYWORDS; --add-location=file keeps the files
# stable while lines move.
LOCALES := catalogue/locale
I18N_KEYWORDS := -k tr -k ntr:1,2 -k ptr:1c,2 -k N_

i18n: venv
	$(VENV)/bin/pybabel --quiet extract -F babel.cfg $(I18N_KEYWORDS) --add-comments=Translators: \
		--add-location=file --sort-output --project=vuoro --msgid-bugs-address= \
		-o $(LOCALES)/vuoro.pot .
	$(VENV)/bin/pybabel --quiet update -D vuoro -i $(LOCALES)/vuoro.pot -d $(LOCALES) \
		--ignore-pot-creation-date --no-wrap
	$(PY) -m catalogue compile

install:
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" EXTRAS="$(EXTRAS)" PYTHON="$(PYTHON)" tools/install.sh

clean:
	rm -rf $(VENV) var mutants .pytest_cache .ruff_cache .hypothesis
