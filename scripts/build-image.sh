#!/usr/bin/env bash
# Builds xlb's container image without a container engine: an OCI image archive holding
# /usr/local/bin/xlb-agent and /usr/local/bin/xlbctl (the build's binaries, debug info stripped),
# exactly the shared libraries they load (from this Debian 12 machine, each package's version
# and copyright file recorded in the image), the CA bundle for API servers whose kubeconfig
# names no CA, and a minimal /etc. One layer, written by tar with fixed owners, modes and times
# (SOURCE_DATE_EPOCH: the last commit's time), added and configured with umoci: the same tree
# and binaries give the same manifest digest.
#
#   scripts/build-image.sh --version V --agent BIN --xlbctl BIN --out DIR [--revision REV]
#
# Writes DIR/xlb-agent-V.oci.tar (an OCI image layout, the `oci-archive:` form skopeo and
# podman read) and DIR/xlb-agent-V.digest, and prints the image's name:tag and digest.
# `make image` runs it (CMake target `image`) with the build's binaries.
set -euo pipefail

version="" agent="" xlbctl="" out="" revision=""
while [ $# -gt 0 ]; do
  case "$1" in
    --version) version="$2"; shift 2 ;;
    --agent) agent="$2"; shift 2 ;;
    --xlbctl) xlbctl="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --revision) revision="$2"; shift 2 ;;
    *) echo "build-image.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$version" ] || [ -z "$agent" ] || [ -z "$xlbctl" ] || [ -z "$out" ]; then
  echo "usage: build-image.sh --version V --agent BIN --xlbctl BIN --out DIR [--revision REV]" >&2
  exit 2
fi
for tool in umoci objcopy dpkg-query tar sha256sum; do
  command -v "$tool" >/dev/null || { echo "build-image.sh: $tool missing (scripts/setup.sh installs it)" >&2; exit 1; }
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name=xlb-agent
if [ -z "$revision" ]; then
  revision="$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
fi
# The commit's time, so that rebuilding the same commit gives the same bytes.
epoch="${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 0)}"
created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"
arch="$(dpkg --print-architecture)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root"/usr/{bin,sbin,lib,lib64,local/bin,share/doc} "$root"/etc/ssl/certs "$root"/tmp
# Debian 12's merged /usr: the binaries' interpreter is /lib64/ld-linux-x86-64.so.2.
for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done

objcopy --strip-debug "$agent" "$root/usr/local/bin/xlb-agent"
objcopy --strip-debug "$xlbctl" "$root/usr/local/bin/xlbctl"

# Every library the two binaries load (ldd: the dynamic loader's own answer), at its merged-/usr
# path, and the package each comes from.
declare -A packages=()
own() {  # the package that installed a file, under either side of the /usr merge
  local path="$1" pkg
  for p in "$path" "${path#/usr}" "/usr$path"; do
    if pkg="$(dpkg-query -S "$p" 2>/dev/null | head -1 | cut -d: -f1)" && [ -n "$pkg" ]; then
      packages["$pkg"]=1
      return
    fi
  done
  echo "build-image.sh: no Debian package owns $path" >&2
  exit 1
}
# "libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x...)", and the loader without "=>".
libs="$(ldd "$agent" "$xlbctl" |
  awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $2 ~ /^\(0x/ {print $1}' | sort -u)"
for lib in $libs; do
  dir="$(realpath "$(dirname "$lib")")"  # /lib/x86_64-linux-gnu -> /usr/lib/x86_64-linux-gnu
  mkdir -p "$root$dir"
  cp -L "$lib" "$root$dir/$(basename "$lib")"
  own "$(realpath "$lib")"
done

# The system's trust anchors: the agent falls back to them for an API server whose kubeconfig
# carries no CA (a managed cluster's public endpoint).
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
packages[ca-certificates]=1

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
# Host names of API servers: /etc/hosts, then DNS (the kubelet writes both into the pod).
echo "hosts: files dns" >"$root/etc/nsswitch.conf"

mkdir -p "$root/usr/share/xlb"
for pkg in $(printf '%s\n' "${!packages[@]}" | sort); do
  dpkg-query -W -f='${Package} ${Version} ${Architecture}\n' "$pkg" >>"$root/usr/share/xlb/packages.txt"
  if [ -f "/usr/share/doc/$pkg/copyright" ]; then
    mkdir -p "$root/usr/share/doc/$pkg"
    cp -L "/usr/share/doc/$pkg/copyright" "$root/usr/share/doc/$pkg/copyright"
  fi
done
printf 'xlb %s\nrevision %s\n' "$version" "$revision" >"$root/usr/share/xlb/version"

chmod 1777 "$root/tmp"
# One layer, byte-for-byte the same for the same files: sorted, root-owned, the commit's time.
tar --create --file "$work/layer.tar" --directory "$root" --sort=name --format=gnu \
    --owner=0 --group=0 --numeric-owner --mtime="@$epoch" .

layout="$work/layout"
umoci init --layout "$layout"
umoci new --image "$layout:$version"
umoci raw add-layer --image "$layout:$version" --history.created "$created" \
    --history.created_by "scripts/build-image.sh" "$work/layer.tar"
umoci config --image "$layout:$version" --created "$created" --history.created "$created" \
    --architecture "$arch" --os linux \
    --config.entrypoint /usr/local/bin/xlb-agent \
    --config.label "org.opencontainers.image.title=$name" \
    --config.label "org.opencontainers.image.version=$version" \
    --config.label "org.opencontainers.image.revision=$revision" \
    --config.label "org.opencontainers.image.created=$created"
umoci gc --layout "$layout"

mkdir -p "$out"
archive="$out/$name-$version.oci.tar"
find "$layout" -exec touch -h -d "@$epoch" {} +
tar --create --file "$archive.tmp" --directory "$layout" --sort=name --format=gnu \
    --owner=0 --group=0 --numeric-owner --mtime="@$epoch" .
mv "$archive.tmp" "$archive"

digest="$(grep -o '"digest":"sha256:[0-9a-f]*"' "$layout/index.json" | head -1 | cut -d'"' -f4)"
echo "$digest" >"$out/$name-$version.digest"
echo "image:   $name:$version"
echo "digest:  $digest   (pin it: image: <registry>/$name:$version@$digest)"
echo "archive: $archive ($(du -k "$archive" | cut -f1) KiB)"
