#!/usr/bin/env bash
# Runs the libFuzzer targets built in FUZZ_BUILD, each for SECONDS, seeded from the committed
# corpus (fuzz/corpus/<target>, read only); what they add goes to a scratch corpus under
# FUZZ_BUILD/work, kept between runs, and a crash, hang or leak is written to
# FUZZ_BUILD/work/artifacts and fails the run.
#   fuzz/run.sh FUZZ_BUILD SECONDS [TARGET...]     (targets: config policies kube_sources
#                                      kubeconfig credentials watch kube_source; default all)
set -euo pipefail
build=$1
seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(config policies kube_sources kubeconfig credentials watch kube_source)
fi
mkdir -p "$build/work/artifacts"
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$build/work/corpus/$t"
  log="$build/work/$t.log"
  # -timeout: one input taking longer is a hang; -rss_limit_mb: one growing without bound.
  # -max_len keeps the mutations small enough to be quick; the committed findings are longer
  # only where their length is the point, and a 16 KiB prefix still reaches every check.
  if "$build/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=16384 -print_final_stats=1 -artifact_prefix="$build/work/artifacts/$t-" \
      "$build/work/corpus/$t" "$here/corpus/$t" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz $t: ${runs:-?} runs in ${seconds}s (${rate:-?}/s), $cov"
  else
    echo "fuzz $t: FAILED (log $log)"
    grep -E 'ERROR|SUMMARY|Test unit written|timeout' "$log" | head -20 || true
    failed=1
  fi
done
exit $failed
