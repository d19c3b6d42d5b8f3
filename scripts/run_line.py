"""Result lines for scripts/compare-simpy.sh, read from a `sluice run` directory.

    run_line.py process RUN_DIR WALL_NS
        tool=sluice-process customers=N seconds=S per_s=R mean_wait_ms=W
        (the long M/M/10 scenario runs the standard model with time stretched 10x: W is its
        queue_wait mean divided by 10, to compare with Erlang C for the standard model)

    run_line.py typo RUN_DIR TIME_V_LOG EXIT_CODE
        the rate-typo check: stops on its own (exit 1, summary.json `limits`), within
        seconds, under 1 GB; exits 1 when it does not

    run_line.py days RUN_DIR TIME_V_LOG EXIT_CODE
        the 128-day memory check: under 64 MB peak RSS; exits 1 when it is not
"""

import json
import re
import sys


def time_v(log):
    """(wall seconds, peak RSS kB) from a /usr/bin/time -v log."""
    text = open(log).read()
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text).group(1)
    secs = sum(float(p) * 60**i for i, p in enumerate(reversed(wall.split(":"))))
    return secs, kb


def main():
    what, out = sys.argv[1], sys.argv[2]
    summary = json.load(open(out + "/summary.json"))
    if what == "process":
        secs = int(sys.argv[3]) / 1e9
        n = summary["messages"]["completed"]
        wait = summary["latency"]["queue_wait"]["mean_ms"] / 10
        print(
            f"tool=sluice-process customers={n} seconds={secs:.4f} per_s={n / secs:.0f} "
            f"mean_wait_ms={wait:.3f}"
        )
        return 0
    secs, kb = time_v(sys.argv[3])
    rc = int(sys.argv[4])
    if what == "typo":
        limits = summary.get("limits", {})
        backlog = limits.get("backlog", 0)
        ok = rc == 1 and limits.get("stopped") is True and kb < 1024 * 1024 and secs < 30
        per_msg = kb * 1024 / backlog if backlog else float("nan")
        print(
            f"rate typo: exit {rc}, stopped at {limits.get('at_s')} s simulated with {backlog:,} "
            f"messages in the system, {secs:.1f} s wall, peak RSS {kb / 1024:.0f} MB "
            f"({per_msg:.0f} bytes per waiting message, all included); target: stops on its "
            f"own within seconds, under 1 GB, exit 1: {'met' if ok else 'MISSED'}"
        )
        return 0 if ok else 1
    if what == "days":
        rows = sum(1 for _ in open(out + "/timeseries.csv")) - 1
        ok = rc == 0 and kb < 64 * 1024
        print(
            f"128 days: {summary['messages']['produced']:,} messages, {rows:,} time-series rows "
            f"(all in timeseries.csv), {secs:.1f} s wall, peak RSS {kb / 1024:.1f} MB; "
            f"target < 64 MB: {'met' if ok else 'MISSED'}"
        )
        return 0 if ok else 1
    raise SystemExit(f"unknown check {what}")


if __name__ == "__main__":
    sys.exit(main())
