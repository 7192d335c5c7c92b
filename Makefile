# make serve [COMFYUI=/path/to/ComfyUI] [PORT=8188]   serve ComfyUI with this pack (embedded host if no path)
# make test [ARGS="-k parity"]                          set up and run every test
# make bench B=bench_p1.py                              run one benchmark from bench/ (prints its ratios)
PORT ?= 8188
.PHONY: serve test bench
serve:
	bash scripts/serve.sh $(COMFYUI) --port $(PORT)
test:
	bash scripts/test.sh $(ARGS)
bench:
	bash bench/run.sh $(B)
