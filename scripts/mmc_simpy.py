"""M/M/c in SimPy: the model sluice's `mmc` binary runs, for scripts/compare-simpy.sh.

Poisson arrivals, c exponential servers (one simpy.Resource, FIFO), stop after N service
completions. Prints one line in the same key=value format as `mmc`:

    tool=simpy customers=N seconds=S per_s=R mean_wait_ms=W p_wait=P
"""

import argparse
import random
import time

import simpy


def erlang_c(c, a):
    """P(wait > 0) for c servers at offered load a (Erlang B recursion)."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1.0 - b))


def run(customers, servers, lam, mu, seed):
    env = simpy.Environment()
    station = simpy.Resource(env, capacity=servers)
    arrivals = random.Random(seed)
    service = random.Random(seed + 1_000_003)
    stats = {"completed": 0, "started": 0, "wait_sum": 0.0, "waited": 0}
    done = env.event()

    def customer():
        arrived = env.now
        with station.request() as req:
            yield req
            wait = env.now - arrived
            stats["started"] += 1
            stats["wait_sum"] += wait
            stats["waited"] += wait > 0
            yield env.timeout(service.expovariate(mu))
            stats["completed"] += 1
            if stats["completed"] == customers:
                done.succeed()

    def source():
        while True:
            yield env.timeout(arrivals.expovariate(lam))
            env.process(customer())

    env.process(source())
    started = time.perf_counter()
    env.run(until=done)
    return stats, time.perf_counter() - started


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("customers", type=int, nargs="?", default=1_000_000)
    ap.add_argument("--servers", type=int, default=10)
    ap.add_argument("--rate", type=float, default=90.0, help="arrivals per second")
    ap.add_argument("--service-mean", type=float, default=0.1, help="seconds")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    mu = 1.0 / a.service_mean
    stats, secs = run(a.customers, a.servers, a.rate, mu, a.seed)
    n = stats["started"]
    print(
        f"tool=simpy customers={stats['completed']} seconds={secs:.4f} "
        f"per_s={stats['completed'] / secs:.0f} "
        f"mean_wait_ms={stats['wait_sum'] / n * 1e3:.3f} p_wait={stats['waited'] / n:.4f}"
    )
    pw = erlang_c(a.servers, a.rate / mu)
    wq = pw / (a.servers * mu - a.rate)
    print(f"theory=erlang-c p_wait={pw:.4f} mean_wait_ms={wq * 1e3:.3f}")


if __name__ == "__main__":
    main()
