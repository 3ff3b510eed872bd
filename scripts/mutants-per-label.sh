#!/usr/bin/env bash
# Every label is proven by its own tests (issue #28): for each label of the registry, mutate only
# the function that cites it (cargo-mutants `--file` on its file, `--re` on its name) and run only
# the tests that cite the label (their test binaries, `--exact` on their names). A label passes
# when at least one mutant is caught; an empty or unrelated citing test catches none.
#
# Usage: scripts/mutants-per-label.sh [options]
#   --prefix P     only labels starting with P (repeatable; e.g. --prefix bp.grad. --prefix cnn.relu)
#   --list         print the cargo-mutants command of each label and run nothing
#   --in-place     mutate this tree instead of a copy (reuses target/; do not edit it meanwhile)
#   --out DIR      where results go (default: mutants-per-label.out); DIR/results.tsv is kept, so
#                  a second run skips the labels already in it (resumable); --fresh clears it
#   --profile P    cargo profile for the mutants (default: mutants, Cargo.toml's optimised,
#                  incremental profile; with --in-place its build is reused label to label)
#
# Prints one line per label: label, function, mutants tried, caught, missed, timeout, unviable,
# and PASS (at least one caught) or FAIL. Exits 1 if any label printed FAIL. The counts are those
# of the body-replacing mutants when one of them was caught, else of all the function's mutants.
set -euo pipefail

prefixes=()
list=0
in_place=0
fresh=0
out=mutants-per-label.out
profile=mutants
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefixes+=("${2:?--prefix takes a label prefix}"); shift 2 ;;
        --list) list=1; shift ;;
        --in-place) in_place=1; shift ;;
        --fresh) fresh=1; shift ;;
        --out) out="${2:?--out takes a folder}"; shift 2 ;;
        --profile) profile="${2:?--profile takes a cargo profile}"; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
command -v cargo-mutants >/dev/null || { echo "error: cargo-mutants is not installed (cargo install cargo-mutants --locked)" >&2; exit 2; }

# The registry, as JSON: label, function, code site and citing tests (`binary::test`). The
# command exits 2 when the registry has problems but still prints every row.
json="$(nice cargo run --release --quiet -- spec-coverage --json || true)"
[ -n "$json" ] || { echo "error: gradspec spec-coverage --json printed nothing" >&2; exit 2; }

# One tab-separated row per selected label: label, function, file, binaries, test names.
rows="$(PREFIXES="${prefixes[*]:-}" python3 -c '
import json, os, sys
prefixes = os.environ["PREFIXES"].split()
for r in json.load(sys.stdin):
    label = r["label"]
    if prefixes and not any(label.startswith(p) for p in prefixes):
        continue
    if not r["function"] or not r["code"]:
        print(f"{label}\t-\t-\t-\t-"); continue
    bins, names = [], []
    for t in r["tests"]:
        b, _, n = t.partition("::")
        if b not in bins: bins.append(b)
        if n not in names: names.append(n)
    print("\t".join([label, r["function"], r["code"].rsplit(":", 1)[0], " ".join(bins), " ".join(names)]))
' <<<"$json")"
[ -n "$rows" ] || { echo "error: no label matches ${prefixes[*]:-}" >&2; exit 2; }

mkdir -p "$out"
results="$out/results.tsv"
[ "$fresh" = 1 ] && rm -f "$results"
touch "$results"

# Lines in a cargo-mutants list file (0 when it is missing or empty).
count() { if [ -f "$1" ]; then grep -c . "$1" || true; else echo 0; fi; }

fail=0
printf '%-34s %-28s %5s %6s %6s %7s %8s  %s\n' label function tried caught missed timeout unviable result
while IFS=$'\t' read -r label func file bins names; do
    if [ "$func" = "-" ] || [ -z "$bins" ]; then
        line="$(printf '%-34s %-28s %5s %6s %6s %7s %8s  %s' "$label" "$func" 0 0 0 0 0 "FAIL (no function or no citing test)")"
        echo "$line"; fail=1; continue
    fi
    prev="$(awk -F'\t' -v l="$label" '$1 == l { print $2 }' "$results")"
    if [ -n "$prev" ] && [ "$list" = 0 ]; then
        echo "$prev"
        case "$prev" in *PASS) ;; *) fail=1 ;; esac
        continue
    fi
    # First the mutants that replace the function's whole body (`replace f -> T with …`): an
    # empty or unrelated citing test catches none of them, a real one catches them all. Only
    # when none of those is caught (or none is viable) are all the function's mutants tried.
    # The full suite has already passed on this tree, so the per-label baseline is skipped.
    base=(nice cargo mutants --no-config --profile "$profile" --file "$file"
          --timeout 600 --baseline skip)
    [ "$in_place" = 1 ] && base+=(--in-place)
    for b in $bins; do base+=(-C --test -C "$b"); done
    # shellcheck disable=SC2206 # test names have no spaces
    tail=(-- -- --exact $names)
    body=("${base[@]}" --re "replace (.*::)?${func}( -> .*)? with " --output "$out/$label/body" "${tail[@]}")
    every=("${base[@]}" --re "\\b${func}\\b" --output "$out/$label/every" "${tail[@]}")
    if [ "$list" = 1 ]; then
        printf '%q ' "${body[@]}"; echo
        continue
    fi
    mkdir -p "$out/$label"
    "${body[@]}" > "$out/$label/body.log" 2>&1 || true
    m="$out/$label/body/mutants.out"
    if [ "$(count "$m/caught.txt")" -eq 0 ]; then
        "${every[@]}" > "$out/$label/every.log" 2>&1 || true
        m="$out/$label/every/mutants.out"
    fi
    caught=$(count "$m/caught.txt"); missed=$(count "$m/missed.txt")
    timeout=$(count "$m/timeout.txt"); unviable=$(count "$m/unviable.txt")
    tried=$((caught + missed + timeout + unviable))
    if [ ! -f "$m/outcomes.json" ]; then
        verdict="FAIL (cargo-mutants did not finish; see $out/$label/*.log)"
    elif [ "$caught" -gt 0 ]; then
        verdict=PASS
    else
        verdict=FAIL
    fi
    line="$(printf '%-34s %-28s %5d %6d %6d %7d %8d  %s' "$label" "$func" "$tried" "$caught" "$missed" "$timeout" "$unviable" "$verdict")"
    echo "$line"
    [ "$verdict" = PASS ] || fail=1
    printf '%s\t%s\n' "$label" "$line" >> "$results"
done <<<"$rows"
exit "$fail"
