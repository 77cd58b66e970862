#!/usr/bin/env bash
# Run one labelled step of `make test`, print its wall time, and record the outcome.
#
#   scripts/step.sh RECORD_FILE "label" command [args...]
#
# Appends "label<TAB>seconds<TAB>PASS|FAIL<TAB>exit status" to RECORD_FILE and exits with the
# command's status, so a Makefile recipe can carry on and report every failure at the end.
set -uo pipefail

record=$1
label=$2
shift 2

printf '\n==> %s: %s\n' "$label" "$*"
start=$(date +%s.%N)
"$@"
status=$?
end=$(date +%s.%N)
seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
if [ "$status" -eq 0 ]; then outcome=PASS; else outcome=FAIL; fi
printf '<== %s: %s in %s s (exit status %d)\n' "$label" "$outcome" "$seconds" "$status"
mkdir -p "$(dirname "$record")"
printf '%s\t%s\t%s\t%d\n' "$label" "$seconds" "$outcome" "$status" >>"$record"
exit "$status"
