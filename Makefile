# Two commands do all set-up on a machine with only python3 (3.10+): `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv test demo study bench lint clean

venv: $(STAMP)

# Re-install only when the dependencies change; `make venv` is idempotent.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# lint-imports: the layering contracts of pyproject.toml (no upward import, formats independent, no circles).
test: venv
	$(BIN)/lint-imports --no-cache
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2  # two workers of one thread each: the two cores, not four threads

demo: venv
	$(BIN)/python tools/demo.py

# The comparison study (8 models x 3 seeds at 32x32, 31 minutes on 2 CPU cores): docs/reports/model_comparison.md;
# then its 64x64 companion (the recurrent models and the 3-D CNN, 3 seeds, 58 minutes): model_comparison_64.md.
STUDY64 := outputs/study64
study: venv
	$(BIN)/python tools/study.py
	test -f $(STUDY64)/synthetic/classes.json || $(BIN)/python tools/make_synthetic.py $(STUDY64)/synthetic --size 64
	$(BIN)/python tools/study.py --data $(STUDY64)/synthetic --out $(STUDY64) --doc docs/reports/model_comparison_64.md \
		--models rcn_gru_s,rcn_lstm_s,rcn_mingru_s,c3d_s data.size=64 data.resize=64

# The benchmarks: what each measures and the doc that shows its figures; `python benchmarks/run.py NAME [ARGS]` runs one.
bench: venv
	$(BIN)/python benchmarks/run.py

lint: venv
	$(BIN)/ruff check vidrcnn tools tests benchmarks
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf $(VENV) outputs .pytest_cache
