#!/usr/bin/env bash
# sluice vs SimPy on M/M/10 at rho = 0.9 (90 arrivals/s, service 100 ms), plus the memory
# check. Run from the repository root:
#
#   scripts/compare-simpy.sh
#
# 1. Creates .venv (gitignored) and installs simpy into it (once).
# 2. Runs the model in SimPy (scripts/mmc_simpy.py) and in sluice (benches/src/bin/mmc.rs):
#    sluice's engine (next to simcore and a bare loop, all on the same streams), and a whole
#    `sim::run` of the same model with meters. Checks every mean wait against Erlang C and
#    SimPy's against sluice's, and prints customers/s and the ratio sluice/SimPy.
#    Also times a whole `sluice run` process, every output included, on the long M/M/10
#    scenario (scenarios/validation/mmc-long.toml: 10 M customers over ~309 simulated hours at
#    the default 10 s interval; the same model with time stretched 10x).
# 3. Memory, under /usr/bin/time -v: a 1-million and a 100-million-message competing-consumers
#    run (target: under 64 MB, flat in the message count); a rate typo (1e9 messages/s against
#    20/s of capacity) that must stop on its own within seconds, under 1 GB, with exit 1 and
#    the limits.max_backlog message; 100 M messages over 128 simulated days at the default
#    interval (benches/scenarios/days-128.toml, under 64 MB).
#
# Knobs (environment): SIMPY_N (customers in SimPy, default 1e6), SLUICE_N (customers in
# sluice, default 1e7), REPS (best of, default 3), BIG (messages of the memory run, default
# 1e8), SKIP_MEMORY=1, SKIP_LONG=1 (skip the 128-day run). Takes about 5-7 minutes on 2 cores.
set -euo pipefail

SIMPY_N=${SIMPY_N:-1000000}
SLUICE_N=${SLUICE_N:-10000000}
REPS=${REPS:-3}
BIG=${BIG:-100000000}
TARGET=${CARGO_TARGET_DIR:-target}

[[ -f Cargo.toml && -d benches && -d scripts ]] || {
    echo "run from the repository root: scripts/compare-simpy.sh" >&2
    exit 2
}

echo "== setup"
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import simpy" 2>/dev/null; then
    .venv/bin/pip install --quiet simpy
fi
PY=.venv/bin/python
echo "python $($PY -c 'import sys; print(sys.version.split()[0])'), simpy $($PY -c 'import simpy; print(simpy.__version__)')"
cargo build --release --quiet -p sluice-benches --bin mmc
cargo build --release --quiet -p sluice
MMC="$TARGET/release/mmc"
SLUICE="$TARGET/release/sluice"
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

# field KEY LINE: the value of key=value in LINE
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

echo "== M/M/10, rho = 0.9: SimPy, $SIMPY_N customers"
simpy_out=$($PY scripts/mmc_simpy.py "$SIMPY_N")
echo "$simpy_out"
simpy_line=$(grep '^tool=simpy' <<<"$simpy_out")

echo "== M/M/10, rho = 0.9: sluice engine / simcore / bare loop, $SLUICE_N customers, best of $REPS"
engine_out=$("$MMC" engine "$SLUICE_N" "$REPS")
echo "$engine_out"

echo "== M/M/10, rho = 0.9: whole sluice run (sim::run, meters), ~$SLUICE_N messages, best of $REPS"
run_out=$("$MMC" run "$SLUICE_N" "$REPS")
echo "$run_out"

echo "== M/M/10, rho = 0.9, long: a whole \`sluice run\` process (outputs included), best of $REPS"
# The same model with time stretched 10x (9 arrivals/s, 1 s service): scripts/run_line.py
# divides its mean wait by 10 to compare with Erlang C for the standard model.
process_line=""
best_ns=""
for _ in $(seq "$REPS"); do
    rm -rf "$SCRATCH/long"
    t0=$(date +%s%N)
    "$SLUICE" run scenarios/validation/mmc-long.toml --out "$SCRATCH/long" >/dev/null 2>&1
    t1=$(date +%s%N)
    if [[ -z "$best_ns" || $((t1 - t0)) -lt "$best_ns" ]]; then
        best_ns=$((t1 - t0))
        process_line=$($PY scripts/run_line.py process "$SCRATCH/long" "$best_ns")
    fi
done
echo "$process_line"

theory=$(field mean_wait_ms "$(grep '^theory' <<<"$engine_out")")
sluice_tol=$(field tolerance_pct "$(grep '^theory' <<<"$engine_out")")

$PY - "$theory" "$sluice_tol" "$SIMPY_N" "$simpy_line" \
    "$(grep '^tool=bare-loop' <<<"$engine_out")" \
    "$(grep '^tool=simcore' <<<"$engine_out")" \
    "$(grep '^tool=sluice-engine' <<<"$engine_out")" \
    "$(grep '^tool=sluice-run' <<<"$run_out")" \
    "$process_line" <<'EOF'
import sys

theory, sluice_tol, simpy_n = float(sys.argv[1]), float(sys.argv[2]) / 100, int(sys.argv[3])
rows = [dict(kv.split("=", 1) for kv in line.split()) for line in sys.argv[4:]]
by = {r["tool"]: r for r in rows}
simpy_tol = 155 / simpy_n**0.5 + 0.01  # same rule as Params::wait_tolerance
fail = []
print("\n== summary (M/M/10, rho = 0.9; Erlang C mean wait %.3f ms)" % theory)
print(f"{'tool':<16} {'customers/s':>13} {'vs SimPy':>9} {'vs bare':>8} {'mean wait ms':>13}")
for r in rows:
    rate, wait = float(r["per_s"]), float(r["mean_wait_ms"])
    tol = simpy_tol if r["tool"] == "simpy" else sluice_tol
    if abs(wait - theory) / theory > tol:
        fail.append(f"{r['tool']}: mean wait {wait} ms vs Erlang C {theory:.3f} (tol {tol:.1%})")
    print(
        f"{r['tool']:<16} {rate:>13,.0f} {rate / float(by['simpy']['per_s']):>8.1f}x "
        f"{rate / float(by['bare-loop']['per_s']):>7.2f}x {wait:>13.3f}"
    )
sp, se = float(by["simpy"]["mean_wait_ms"]), float(by["sluice-engine"]["mean_wait_ms"])
if abs(sp - se) / theory > simpy_tol + sluice_tol:
    fail.append(f"SimPy ({sp} ms) and sluice ({se} ms) disagree on the mean wait")
eng = float(by["sluice-engine"]["per_s"])
run = float(by["sluice-run"]["per_s"])
proc = float(by["sluice-process"]["per_s"])
print(
    f"\nratio sluice/SimPy: engine {eng / float(by['simpy']['per_s']):.1f}x, "
    f"whole run {run / float(by['simpy']['per_s']):.1f}x, "
    f"whole `sluice run` process (long scenario) {proc / float(by['simpy']['per_s']):.1f}x "
    f"(target >= 50x, defect < 20x)"
)
print(
    f"sluice engine: {eng / float(by['simcore']['per_s']):.2f}x simcore (target >= 1), "
    f"{eng / float(by['bare-loop']['per_s']):.2f}x the bare loop (target >= 0.75, defect < 0.5)"
)
print(f"mean waits agree with Erlang C and with each other: {'no' if fail else 'yes'}")
for f in fail:
    print("FAIL:", f)
sys.exit(1 if fail else 0)
EOF

if [[ "${SKIP_MEMORY:-0}" == 1 ]]; then
    exit 0
fi

echo
echo "== memory: competing-consumers (8 instances x 16 handlers, batch 16, 0.1 % poison)"
rss() { # rss MESSAGES: runs it under time -v; the run's line to stderr, peak RSS (kB) to stdout
    local log kb
    log=$(mktemp)
    /usr/bin/time -v "$MMC" cc "$1" 2>"$log" | sed 's/^/  /' >&2
    kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")
    rm -f "$log"
    echo "$kb"
}
small_kb=$(rss 1000000)
big_kb=$(rss "$BIG")
$PY - "$small_kb" "$big_kb" "$BIG" <<'EOF'
import sys
small, big, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ok = big < 64 * 1024
print(f"peak RSS: 1e6 messages {small / 1024:.1f} MB, {n:.0e} messages {big / 1024:.1f} MB "
      f"(x{big / small:.2f} for x{n / 1e6:.0f} messages); target < 64 MB: {'met' if ok else 'MISSED'}")
sys.exit(0 if ok else 1)
EOF

# timed OUT_DIR COMMAND...: runs COMMAND under time -v, then prints the check line
timed() {
    local what=$1 out=$2 log rc
    shift 2
    log="$SCRATCH/time.log"
    set +e
    /usr/bin/time -v "$@" >/dev/null 2>"$log"
    rc=$?
    set -e
    grep -E '^(warning|error|  arrivals)' "$log" | sed 's/^/  /' || true
    $PY scripts/run_line.py "$what" "$out" "$log" "$rc"
}

echo
echo "== memory: a rate typo (1e9 messages/s against 20/s of capacity), default [limits]"
printf '%s\n' 'name = "typo"' 'duration = "1h"' 'pattern = "competing-consumers"' '[workload]' \
    'rate = "1000000000/s"' '[consumer]' 'instances = 1' 'concurrency = 1' \
    'work = "exp(mean=50ms)"' >"$SCRATCH/typo.toml"
timed typo "$SCRATCH/typo" "$SLUICE" run "$SCRATCH/typo.toml" --out "$SCRATCH/typo" --report none

if [[ "${SKIP_LONG:-0}" == 1 ]]; then
    exit 0
fi
echo
echo "== memory: 100 M messages over 128 simulated days at the default interval"
timed days "$SCRATCH/days-128" "$SLUICE" run benches/scenarios/days-128.toml --out "$SCRATCH/days-128"
