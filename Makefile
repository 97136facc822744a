.PHONY: install style quality test bench pipeline

install:
	bash scripts/install.sh --dev

# no `ruff format`: the tree is not formatted with it (it would rewrite most files); style = ruff's fixable rules
style:
	.venv/bin/ruff check --fix r1ci_core r1ci_pipeline tests benchmarks

quality:
	.venv/bin/ruff check r1ci_core r1ci_pipeline tests benchmarks

test:
	.venv/bin/python -m pytest -q

bench:
	for b in benchmarks/*_bench.py; do .venv/bin/python $$b; done

pipeline:
	.venv/bin/dagster asset materialize -m r1ci_pipeline --select '*'
