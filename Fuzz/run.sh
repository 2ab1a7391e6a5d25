#!/usr/bin/env bash
# make fuzz: runs each target (name=program) for FUZZ_SECONDS (or until FUZZ_RUNS inputs) from its seed corpus, Fuzz/corpus/<name>,
# into a working copy of it under <scratch>/corpus/<name> (what libFuzzer adds stays out of the
# repository), with crash inputs in <scratch>/artifacts/. Prints each target's figures; fails when
# one found anything.
set -uo pipefail
scratch=$1
shift
seconds=${FUZZ_SECONDS:-30}
runs_limit=${FUZZ_RUNS:--1}
here=$(cd "$(dirname "$0")" && pwd)
status=0
summary=()
# the Swift runtime's backtracer would race ASan's report of a Swift failure: ASan's alone
export SWIFT_BACKTRACE=enable=no
for target in "$@"; do
    name=${target%%=*}
    program=${target#*=}
    work=$scratch/corpus/$name
    artifacts=$scratch/artifacts/$name
    log=$scratch/logs/$name.log
    mkdir -p "$work" "$artifacts" "$(dirname "$log")"
    echo "fuzz: $name for ${seconds}s (log: $log)"
    # -timeout: an input that takes a second is a hang; -rss_limit_mb: one that grows memory
    "$program" -max_total_time="$seconds" -runs="$runs_limit" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$work" "$here/corpus/$name" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    coverage=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    line="$name: ${runs:-?} runs, ${speed:-?} exec/s, ${coverage:-no coverage line}"
    if [ $rc -ne 0 ] || [ -n "$(ls -A "$artifacts")" ]; then
        line="$line: FOUND SOMETHING (rc $rc; $artifacts)"
        tail -40 "$log"
        status=1
    fi
    summary+=("$line")
done
printf '%s\n' "${summary[@]}"
exit $status
