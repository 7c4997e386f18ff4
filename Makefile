# The two commands a newcomer types as root on a fresh Debian 12 machine:
#   make demo   - set up, build, bring the multi-node testbed up, run xlb-agent on its nodes,
#                 drive traffic through a 70/30 split and every path, print where it went and
#                 how the answers came back; always torn down
#   make test   - set up, build, and run every test (unit, loader, golden packets, tshark,
#                 sync, agent, xlbctl, the Kubernetes client and sources against a test API
#                 server and kubectl, the manifests, the parsers' fuzz targets (15 s each),
#                 the testbed and the two-cluster end-to-end tests)
# make image: the container image (xlb-agent and xlbctl) as an OCI archive under build/image/,
#             built without a container engine; prints its name:tag and digest.
# make bench / bench-sync / bench-kube: the datapath, control-plane and Kubernetes benchmarks.
# make perf: packet rates through a node (xlb against routing, kube-proxy's iptables and
#            nftables modes and an XDP forwarder), ~8 minutes; PERF_ARGS=--quick for ~1 minute.
# make fuzz-long FUZZ_SECONDS=N: every fuzz target for N seconds (default 600) each.
# make fuzz-packets FRAMES=N SEED=S: mutated frames through xlb_xdp and xlb_tc (default 10
#   million, a new seed each run; CI runs 1 million with seed 1).
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all setup build test demo bench bench-sync bench-kube perf fuzz-long fuzz-packets clean

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

.PHONY: image
image: build
	cmake --build $(BUILD) --target image

bench: build
	$(BUILD)/bench/xlb-bench

bench-sync: build
	$(BUILD)/bench/xlb-sync-bench

bench-kube: build
	$(BUILD)/bench/kube/xlb-kube-bench

PERF_ARGS ?= --full
PERF_OUT ?= $(BUILD)/perf
perf: build
	mkdir -p $(PERF_OUT)
	$(BUILD)/bench/perf/xlb-perf $(PERF_ARGS) --json $(PERF_OUT)/perf.json --png $(PERF_OUT)/perf.png

FUZZ_SECONDS ?= 600
fuzz-long: build
	fuzz/run.sh $(BUILD)/fuzz $(FUZZ_SECONDS)

FRAMES ?= 10000000
SEED ?= $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
fuzz-packets: build
	XLB_FUZZ_FRAMES=$(FRAMES) XLB_FUZZ_SEED=$(SEED) XLB_FUZZ_TSHARK=100000 \
	    $(BUILD)/tests/datapath/datapath_fuzz_tests

clean:
	rm -rf $(BUILD)
