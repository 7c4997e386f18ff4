# The two commands a newcomer types as root on a fresh Debian 12 machine:
#   make demo   - set up, build, bring the two-cluster testbed up, run xlb on its nodes, drive
#                 traffic through a 70/30 split and print the live shares; always torn down
#   make test   - set up, build, and run every test (unit, loader, golden packets, tshark,
#                 sync, agent, xlbctl, the testbed and the two-cluster end-to-end tests)
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all setup build test demo bench bench-sync clean

all: build

setup:
	bash scripts/setup.sh

build: setup
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 600

demo: build
	$(BUILD)/tests/testbed/xlb-demo

bench: build
	$(BUILD)/bench/xlb-bench

bench-sync: build
	$(BUILD)/bench/xlb-sync-bench

clean:
	rm -rf $(BUILD)
