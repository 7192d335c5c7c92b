# make serve [COMFYUI=/path/to/ComfyUI] [PORT=8188]   serve ComfyUI with this pack (embedded host if no path)
# make test [ARGS="-k parity"]                          set up and run every test
PORT ?= 8188
.PHONY: serve test bench
serve:
	bash scripts/serve.sh $(COMFYUI) --port $(PORT)
test:
	bash scripts/test.sh $(ARGS)
