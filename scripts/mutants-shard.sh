#!/usr/bin/env bash
# Runs one shard of the mutation scope (.cargo/mutants.toml) and prints caught, missed,
# unviable and timeout counts per file. The scope holds about 3,800 mutants. Measured on this
# 2-core machine (docs/mutation-testing.md), a mutant costs 6–13 s in params.rs,
# safetensors_io.rs or batch.rs, but 40–90 s in the kernels and the trainer, whose change
# makes the library's incremental build re-optimise far more code. So the default is 100
# shards of about 38 consecutive mutants: 25–57 minutes each at those rates, plus the
# profile's first, cold build (about 13 minutes) when target/mutants is empty. For the files
# under src/kernels/, CARGO_PROFILE_MUTANTS_OPT_LEVEL=0 in the environment builds a mutant in
# about 7 s instead of 92 s. Measured with the kernels' five test binaries, whose tests then
# take 25 s instead of 1.5 s; the config's whole list was not timed at opt-level 0
# (docs/mutation-testing.md).
#
# Usage: scripts/mutants-shard.sh K [N]        # shard K of N (0-based, N defaults to 100)
#        scripts/mutants-shard.sh --file F ...    # only the mutants of these files (same tests,
#                                                 # profile and exclusions as the config)
#        scripts/mutants-shard.sh --counts DIR    # only print the table of a finished run
#
# Results go to mutants-shards/K-of-N/mutants.out (git-ignored). Needs cargo-mutants
# (`cargo install cargo-mutants --locked`) and MNIST in data/mnist or $MNIST_DIR (the data
# tests read it; `cargo run --release -- mnist fetch` fetches it).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

counts() {
    python3 - "$1/outcomes.json" <<'PY'
import collections, json, sys
outcomes = json.load(open(sys.argv[1]))["outcomes"]
table = collections.defaultdict(collections.Counter)
names = {"CaughtMutant": "caught", "MissedMutant": "missed", "Unviable": "unviable",
         "Timeout": "timeout", "Success": "missed", "Failure": "caught"}
for o in outcomes:
    scenario = o["scenario"]
    if scenario == "Baseline":
        continue
    mutant = scenario["Mutant"]
    summary = o["summary"]
    table[mutant["file"]][names.get(summary, summary)] += 1
cols = ["caught", "missed", "unviable", "timeout"]
print("| file | " + " | ".join(cols) + " |")
print("|---|" + "---:|" * len(cols))
total = collections.Counter()
for f in sorted(table):
    total.update(table[f])
    print(f"| `{f}` | " + " | ".join(str(table[f][c]) for c in cols) + " |")
print("| **total** | " + " | ".join(f"**{total[c]}**" for c in cols) + " |")
PY
}

if [ "${1:-}" = "--counts" ]; then
    counts "${2:?--counts takes a mutants.out folder}"
    exit 0
fi
command -v cargo-mutants >/dev/null || { echo "error: cargo-mutants is not installed (cargo install cargo-mutants --locked)" >&2; exit 2; }
export MNIST_DIR="${MNIST_DIR:-$root/data/mnist}"
[ -d "$MNIST_DIR" ] || { echo "error: MNIST not found in $MNIST_DIR (run: cargo run --release -- mnist fetch)" >&2; exit 2; }

if [ "${1:-}" = "--file" ]; then
    shift
    [ $# -gt 0 ] || { echo "error: --file takes one or more files of the scope" >&2; exit 2; }
    # cargo-mutants adds --file to the config's globs, so the config's settings are passed by
    # hand with --no-config: the same profile, timeouts, test binaries and exclusions.
    mapfile -t args < <(python3 - <<'PY'
import tomllib
c = tomllib.load(open(".cargo/mutants.toml", "rb"))
print("--no-config"); print("--profile"); print(c["profile"])
print("--timeout-multiplier"); print(c["timeout_multiplier"])
print("--minimum-test-timeout"); print(c["minimum_test_timeout"])
for a in c["additional_cargo_args"]: print("--cargo-arg=" + a)
for r in c["exclude_re"]: print("--exclude-re"); print(r)
PY
)
    files=()
    for f in "$@"; do
        [ -f "$f" ] || { echo "error: $f: no such file" >&2; exit 2; }
        files+=(--file "$f")
    done
    out="mutants-shards/files-$(printf '%s\n' "$@" | md5sum | cut -c1-8)"
    mkdir -p "$out"
    cargo mutants "${args[@]}" "${files[@]}" --output "$out" || status=$?
    counts "$out/mutants.out"
    exit "${status:-0}"
fi

k="${1:?usage: scripts/mutants-shard.sh K [N] | --file F... | --counts DIR}"
n="${2:-100}"
case "$k$n" in *[!0-9]*) echo "error: K and N must be numbers (got '$k' '$n')" >&2; exit 2 ;; esac
[ "$k" -lt "$n" ] || { echo "error: shard K=$k must be below N=$n" >&2; exit 2; }

out="mutants-shards/$k-of-$n"
mkdir -p "$out"
# cargo-mutants exits 2 when a mutant was missed and 3 on a timeout; the table says which.
cargo mutants --shard "$k/$n" --output "$out" || status=$?
counts "$out/mutants.out"
exit "${status:-0}"
