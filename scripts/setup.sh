#!/usr/bin/env bash
# Installs everything xlb needs on Debian 12 and mounts bpffs when absent.
# Idempotent and non-interactive: safe to run on every `make test`. (libclang-rt-14-dev is
# libFuzzer and the sanitizer runtimes for the fuzz targets; clang only recommends it. umoci
# writes the container image of `make image`, with no container engine. iptables, nftables and
# conntrack are kube-proxy's modes that xlb-perf measures xlb against; gnuplot-nox draws its
# plot.)
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config make
  clang llvm libclang-rt-14-dev
  libbpf-dev bpftool libelf-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libspdlog-dev libfmt-dev nlohmann-json3-dev libyaml-cpp-dev libboost-dev libssl-dev
  iproute2 tshark tcpdump ethtool procps
  iptables nftables conntrack gnuplot-nox
  openssl
  umoci ca-certificates
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs packages and mounts bpffs)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! mountpoint -q /sys/fs/bpf; then
  mount -t bpf bpf /sys/fs/bpf
fi

# kubectl is the independent client the tests hold the test API server and the manifests
# against (tests/kube, tests/deploy). It is not in Debian 12's archive, so it is not installed
# here; `make demo` and the build do not need it. Without it those tests fail and say so.
if ! command -v kubectl >/dev/null 2>&1; then
  echo "setup.sh: warning: kubectl not found on PATH; tests/kube and tests/deploy need it" \
       "(a release binary from https://dl.k8s.io/release/<version>/bin/linux/amd64/kubectl" \
       "into /usr/local/bin)" >&2
fi
