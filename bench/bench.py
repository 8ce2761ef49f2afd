#!/usr/bin/env python3
"""shopnow benchmarks: the cost of correctness, measured side by side in one run.

Started by bench/run. It starts its own redis-server, a fresh database seeded with 10,000
products, and one instance per strategy (plus the article's design) on free ports; then it
alternates wrk runs between them so that every ratio compares figures of the same run.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTKIT = None  # the testkit binary, from --testkit
PRODUCTS = 10_000
STRATEGIES = ["versioned", "ttl", "delete", "none", "article"]


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def testkit(*args):
    """Runs the testkit command (crates/testkit) and returns what it printed."""
    return subprocess.run([TESTKIT, *args], check=True, capture_output=True, text=True).stdout.strip()


def free_port():
    return int(testkit("free-port"))


def http(method, url, body=None, token=None):
    request = urllib.request.Request(url, method=method, data=body)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def psql(database, sql):
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-Atqc", sql],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


class Redis:
    """The benchmark's own redis-server, started by testkit; it stops when its stdin closes."""

    def __init__(self):
        self.process = subprocess.Popen([TESTKIT, "redis-server"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.url = self.process.stdout.readline().strip()
        self.port = int(self.url.rsplit(":", 1)[1])

    def cli(self, *args):
        out = subprocess.run(["redis-cli", "-p", str(self.port), *args], check=True,
                             capture_output=True, text=True)
        return out.stdout.strip()

    def info(self, field):
        for line in self.cli("INFO").splitlines():
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
        return None

    def stop(self):
        self.process.stdin.close()
        self.process.wait()


class Instance:
    def __init__(self, binary, name, env, extra_args, logdir):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = dict(os.environ, **env, SHOPNOW_LISTEN=f"127.0.0.1:{self.port}")
        self.log = open(Path(logdir) / f"{name}.log", "w")
        self.process = subprocess.Popen([binary, "serve", *extra_args], env=full_env,
                                        stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self):
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                http("GET", self.url + "/readyz")
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become ready")

    def metrics(self):
        """Counter values of this instance's /metrics, by full series name."""
        values = {}
        for line in http("GET", self.url + "/metrics").decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def wrk(url, seconds, connections, threads, script=None, script_args=()):
    """Runs wrk; returns requests/s, p50 and p99 in ms, and non-2xx responses."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        command += ["-s", str(HERE / script)]
    command.append(url)
    if script_args:
        command += ["--", *map(str, script_args)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def percentile(p):
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"rps": rps, "p50_ms": percentile(50), "p99_ms": percentile(99), "requests": requests,
            "non_2xx": int(errors.group(1)) if errors else 0}


def delta(before, after, prefix):
    return sum(v - before.get(k, 0.0) for k, v in after.items() if k.startswith(prefix))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--testkit", required=True, help="the testkit binary (crates/testkit)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hot-rounds", type=int, default=5,
                        help="rounds of the hot-read comparison, whose ratios are the targets")
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-writes", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s, 50,000 memory writes")
    parser.add_argument("--only", default="", help="comma-separated parts: hot,spread,writes,orders,flash,memory")
    parser.add_argument("--json", default=None, help="where to write the results")
    args = parser.parse_args()
    global TESTKIT
    TESTKIT = args.testkit
    if args.quick:
        args.rounds, args.hot_rounds, args.seconds, args.memory_writes = 1, 1, 3, 50_000
    parts = set(args.only.split(",")) if args.only else {"hot", "spread", "writes", "orders", "flash", "memory"}

    workdir = tempfile.mkdtemp(prefix="shopnow-bench-")
    database_url = testkit("create-database", "--prefix", "shopnow_bench")
    database = database_url.rsplit("/", 1)[1]
    token = uuid.uuid4().hex
    redis = Redis()
    base_env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis.url,
        "SHOPNOW_ADMIN_TOKEN": token,
        "SHOPNOW_SAMPLER_RATE": "0",
        "RUST_LOG": "warn",
    }
    log(f"seeding {PRODUCTS} products into {database}")
    subprocess.run([args.binary, "seed", "--products", str(PRODUCTS)], env=dict(os.environ, **base_env),
                   check=True, capture_output=True)
    psql(database, "UPDATE products SET stock = 1000000000")

    instances = {}
    for name in STRATEGIES:
        env = dict(base_env, SHOPNOW_CACHE_PREFIX=f"bench-{name}",
                   SHOPNOW_CACHE_STRATEGY="versioned" if name == "article" else name)
        extra = ["--article-design"] if name == "article" else []
        instances[name] = Instance(args.binary, name, env, extra, workdir)
    for instance in instances.values():
        instance.wait_ready()
    results = {"machine": machine(), "rounds": args.rounds, "hot_rounds": args.hot_rounds,
               "seconds": args.seconds,
               "connections": args.connections, "threads": args.threads}
    try:
        w = dict(seconds=args.seconds, connections=args.connections, threads=args.threads)
        hot_id = 42
        for instance in instances.values():  # warm every cache with every product
            wrk(instance.url, 2, 16, 1, "spread-reads.lua", [PRODUCTS])

        if "hot" in parts:
            log("hot reads: one product, strategies alternating")
            targets = {"livez": instances["versioned"].url + "/livez"}
            targets.update({name: f"{i.url}/v1/products/{hot_id}" for name, i in instances.items()})
            rounds = {name: [] for name in targets}
            names = list(targets)
            for r in range(args.hot_rounds):
                # Each round starts with another target, so that none always follows the same one.
                for name in names[r % len(names):] + names[:r % len(names)]:
                    rounds[name].append(wrk(targets[name], **w))
                    log(f"  round {r + 1} {name}: {rounds[name][-1]['rps']:.0f} req/s")
            results["hot"] = {name: median_of(runs) for name, runs in rounds.items()}

        if "spread" in parts:
            log("reads spread over 10,000 products")
            results["spread"] = {
                name: median_of([wrk(i.url, script="spread-reads.lua", script_args=[PRODUCTS], **w)
                                 for _ in range(args.rounds)])
                for name, i in instances.items()}

        if "writes" in parts:
            log("stock adjustments")
            results["writes"] = {
                name: median_of([wrk(i.url, script="adjust.lua", script_args=[PRODUCTS, token], **w)
                                 for _ in range(args.rounds)])
                for name, i in instances.items() if name != "article"}

        if "orders" in parts:
            log("orders")
            results["orders"] = {
                name: median_of([wrk(instances[name].url, script="order.lua", script_args=[PRODUCTS], **w)
                                 for _ in range(args.rounds)])
                for name in ["versioned", "none"]}

        if "flash" in parts:
            log("flash sale: one product, 50 writes/s, reads as fast as they come")
            results["flash"] = {name: flash_sale(i, token, args.seconds) for name, i in instances.items()}

        if "memory" in parts:
            log(f"memory: {args.memory_writes} writes over {PRODUCTS} products (versioned)")
            results["memory"] = memory(instances["versioned"], redis, database, token, args.memory_writes)
    finally:
        for instance in instances.values():
            instance.stop()
        redis.stop()
        testkit("drop-database", database_url)

    results["ratios"] = ratios(results)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")


def median_of(runs):
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def flash_sale(instance, token, seconds):
    """Steady writes to one product while wrk reads it; Postgres reads per write, hit ratio."""
    product = 7
    before = instance.metrics()
    stop = threading.Event()
    writes = [0]

    def writer():
        next_at = time.time()
        while not stop.is_set():
            http("POST", f"{instance.url}/v1/products/{product}/stock/adjustments", b'{"delta": -1}', token)
            writes[0] += 1
            next_at += 1 / 50
            time.sleep(max(0.0, next_at - time.time()))

    thread = threading.Thread(target=writer)
    thread.start()
    reads = wrk(f"{instance.url}/v1/products/{product}", seconds, 64, 2)
    stop.set()
    thread.join()
    after = instance.metrics()
    hits = delta(before, after, 'cache_reads_total{strategy="%s",result="hit"}' % instance.name)
    total = delta(before, after, 'cache_reads_total{strategy="%s"' % instance.name)
    database_reads = delta(before, after, 'cache_database_reads_total{strategy="%s"}' % instance.name)
    return {"reads_per_s": reads["rps"], "read_p99_ms": reads["p99_ms"], "writes": writes[0],
            "postgres_reads": database_reads,
            "postgres_reads_per_write": database_reads / max(writes[0], 1),
            "hit_ratio": hits / total if total else 0.0}


def memory(instance, redis, database, token, total_writes):
    """Writes in four chunks; after each, Redis keys per product and used_memory."""
    samples = []
    done = lambda: int(psql(database, "SELECT sum(version) - count(*) FROM products"))
    start = done()
    for quarter in range(1, 5):
        target = start + total_writes * quarter // 4
        while done() < target:
            wrk(instance.url, 5, 64, 2, "adjust.lua", [PRODUCTS, token])
        keys = int(redis.cli("DBSIZE"))
        per_product = {}
        for key in redis.cli("--scan", "--pattern", "bench-versioned:*").splitlines():
            if not key.endswith(":lease"):
                product = key.split("}")[0]
                per_product[product] = per_product.get(product, 0) + 1
        samples.append({"writes": done() - start, "redis_keys": keys,
                        "max_keys_per_product": max(per_product.values(), default=0),
                        "products_cached": len(per_product),
                        "used_memory": int(redis.info("used_memory"))})
        log(f"  {samples[-1]}")
    return samples


def ratios(results):
    r = {}
    hot = results.get("hot")
    if hot:
        v = hot["versioned"]
        r["versioned_over_livez"] = v["rps"] / hot["livez"]["rps"]
        r["versioned_over_ttl"] = v["rps"] / hot["ttl"]["rps"]
        r["versioned_over_none"] = v["rps"] / hot["none"]["rps"]
        r["versioned_over_article"] = v["rps"] / hot["article"]["rps"]
        r["versioned_p99_over_ttl_p99"] = v["p99_ms"] / hot["ttl"]["p99_ms"]
    return r


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return {"cpus": os.cpu_count(), "cpu": cpu, "date": time.strftime("%Y-%m-%d")}


if __name__ == "__main__":
    main()
