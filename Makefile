# make serve [HOST=v0.33.0] [COMFYUI=/path/to/ComfyUI [PYTHON=...]] [PORT=8188]   serve ComfyUI with this pack
# make test  [HOST=v0.33.0] [COMFYUI=/path/to/ComfyUI [PYTHON=...]] [ARGS="-k parity"]   set up and run every test
# make test-unit                                       the tests that need no host, server or browser (seconds)
# make lint                                            ruff over the pack (pyproject.toml), zero findings expected
# make docs-images                                     redraw docs/images (the default host; review, then commit)
# make bench B=bench_p1.py                              run one benchmark from bench/ (prints its ratios)
# HOST: v0.3.75 (default, embedded from PyPI) or v0.33.0 (the newest release); COMFYUI: your own ComfyUI instead.
HOST = v0.3.75
COMFYUI =
PYTHON =
PORT = 8188
HOSTENV = TCD_HOST="$(HOST)" TCD_COMFYUI="$(COMFYUI)" TCD_PYTHON="$(PYTHON)"
.PHONY: serve test test-unit lint bench docs-images
serve:
	$(HOSTENV) bash scripts/serve.sh --port $(PORT)
test:
	$(HOSTENV) bash scripts/test.sh $(ARGS)
test-unit:
	bash scripts/test-unit.sh $(ARGS)
lint:
	bash scripts/lint.sh
docs-images:
	$(HOSTENV) bash scripts/docs-images.sh $(ARGS)
bench:
	$(HOSTENV) bash bench/run.sh $(B)
