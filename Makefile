# The two commands a newcomer types as root on a fresh Debian 12 machine:
#   make demo   - set up, build, and run the datapath benchmark (the main job for now)
#   make test   - set up, build, and run every test (unit, loader, golden packets, tshark)
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all setup build test demo bench clean

all: build

setup:
	bash scripts/setup.sh

build: setup
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 600

demo: bench

bench: build
	$(BUILD)/bench/xlb-bench

clean:
	rm -rf $(BUILD)
