#!/usr/bin/env python3
"""shopnow benchmarks: the cost of correctness, measured side by side in one run.

Started by bench/run. It starts its own redis-server, and one instance per target on free ports,
each with a database of its own seeded with 10,000 products (so that no instance's relay or
janitor works for another); then it alternates wrk runs between the targets so that every ratio
compares figures of the same run. Every instance runs with the default configuration (logging
included), as a deployment would, unless its target says otherwise.

Parts (--only a,b; the default is every part but soak):
  hot       one product read as fast as possible: every strategy, /livez, the access log, baselines
  spread    reads spread over every product
  writes    stock adjustments: every strategy, baselines
  orders    one-item orders: versioned and none
  flash     a flash sale: one product, 50 writes/s, reads as fast as they come
  shoppers  10,000 shoppers holding one product: its cached read (near cache on and off) and its
            copy's size against a product with none, and new holds at 10,000 live against at 0
  memory    one million writes: Redis keys and memory stay flat
  missing   reads of ids that do not exist: what they cost Postgres and Redis
  outside   changes made straight in Postgres: one product (latency to every instance), and a
            bulk UPDATE of 100,000 products (time to publish all, API writes meanwhile)
  replica   what a replica costs a write (SHOPNOW_REDIS_REPLICAS=1, a real replica)
  tls       the cached read over TLS (rediss://) against plain TCP
  near      the near cache (SHOPNOW_NEAR_CACHE=on), two instances per deployment: the hot read
            against the bare handler and Redis commands per read, writes to a product both
            instances hold, a flash sale with reads on one instance and writes on the other
  soak      10 minutes of mixed load on two instances, one scraped, one not: memory over time
"""

import argparse
import json
import os
import random
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
DEFAULT_PARTS = ["hot", "spread", "writes", "hot-writes", "orders", "flash", "shoppers", "expiry", "pages", "memory", "missing", "outside",
                 "replica", "tls", "near"]
# near-hot: the near part's read comparison alone (a few minutes), to measure a change quickly.
ALL_PARTS = DEFAULT_PARTS + ["soak", "near-hot"]


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
    """A redis-server of the benchmark's own, started by testkit; it stops when its stdin closes.
    With tls, it speaks TLS only and `ca_file` is the authority that signed its certificate."""

    def __init__(self, *server_args, tls=False):
        command = [TESTKIT, "redis-server", *(["--tls"] if tls else []), "--", *server_args]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        self.url = self.process.stdout.readline().strip()
        self.ca_file = self.process.stdout.readline().strip() if tls else None
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


class BareHandler:
    """The physical limit of a cached read: axum + one Redis GET of a versioned copy, nothing
    else (crates/testkit/src/bin/bare-handler.rs), reading the copies under `prefix`. In
    `memory` mode it answers from a map in its own memory instead: the limit of a read with no
    round trip (the near cache's)."""

    def __init__(self, redis_url, prefix, mode="redis"):
        binary = Path(TESTKIT).with_name("bare-handler")
        self.process = subprocess.Popen([binary, redis_url, prefix, mode],
                                        stdout=subprocess.PIPE, text=True)
        self.url = self.process.stdout.readline().strip()

    def stop(self):
        self.process.kill()
        self.process.wait()


class Database:
    """A database of its own, seeded by `binary` with `products` products of ample stock."""

    def __init__(self, binary, products=PRODUCTS):
        self.url = testkit("create-database", "--prefix", "shopnow_bench")
        self.name = self.url.rsplit("/", 1)[1]
        subprocess.run([binary, "seed", "--products", str(products)],
                       env=dict(os.environ, DATABASE_URL=self.url), check=True, capture_output=True)
        psql(self.name, "UPDATE products SET stock = 1000000000")
        # The seed's own outbox rows are not what any part measures.
        psql(self.name, "DELETE FROM cache_outbox")

    def drop(self):
        testkit("drop-database", self.url)


class Instance:
    """One shopnow process. `strategy` is what its metrics are labelled with."""

    def __init__(self, binary, name, strategy, env, extra_args, logdir):
        self.name = name
        self.strategy = strategy
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = dict(os.environ)
        full_env.pop("RUST_LOG", None)  # the default configuration, unless `env` sets one
        full_env.update(env, SHOPNOW_LISTEN=f"127.0.0.1:{self.port}")
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
        """Sample values of this instance's /metrics, by full series name."""
        values = {}
        for line in http("GET", self.url + "/metrics").decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def rss_bytes(self):
        for line in open(f"/proc/{self.process.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


class Bench:
    """The run's Redis, databases and instances, made on demand and stopped at the end."""

    def __init__(self, binary, logdir):
        self.binary = binary
        self.logdir = logdir
        self.token = uuid.uuid4().hex
        self.redis = Redis()
        self.databases = []
        self.instances = {}
        self.redises = []

    def database(self, binary=None, products=PRODUCTS):
        db = Database(binary or self.binary, products)
        self.databases.append(db)
        return db

    def start(self, name, strategy="versioned", db=None, binary=None, redis=None, env=None,
              extra_args=(), label=None):
        """Starts target `name` (once ready) on `db` (a new one by default). `label` is the
        strategy its metrics name, when not `strategy`."""
        binary = binary or self.binary
        db = db or self.database(binary)
        redis = redis or self.redis
        full_env = {
            "DATABASE_URL": db.url,
            "REDIS_URL": redis.url,
            "SHOPNOW_ADMIN_TOKEN": self.token,
            "SHOPNOW_SAMPLER_RATE": "0",
            # wrk sends from one address: measured without a rate limit per client.
            "SHOPNOW_RATE_LIMIT_PER_MINUTE": "0",
            "SHOPNOW_CACHE_STRATEGY": strategy,
            "SHOPNOW_CACHE_PREFIX": "bench-" + re.sub(r"[^A-Za-z0-9_.:-]", "-", name),
        }
        full_env.update(env or {})
        instance = Instance(binary, name, label or strategy, full_env, list(extra_args), self.logdir)
        instance.db = db
        instance.wait_ready()
        self.instances[name] = instance
        return instance

    def retire(self, *instances):
        """Stops instances a part no longer needs (each holds up to 18 Postgres connections)."""
        for instance in instances:
            instance.stop()
            del self.instances[instance.name]

    def stop(self):
        for instance in self.instances.values():
            instance.stop()
        for redis in [self.redis, *self.redises]:
            redis.stop()
        for db in self.databases:
            db.drop()


def wrk(url, seconds, connections, threads, script=None, script_args=()):
    """Runs wrk; returns requests/s, p50 and p99 in ms, requests and non-2xx responses."""
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

    result = {"rps": rps, "p50_ms": percentile(50), "p99_ms": percentile(99), "requests": requests,
              "non_2xx": int(errors.group(1)) if errors else 0}
    timeouts = re.search(r"Socket errors: .*timeout (\d+)", out)
    result["timeouts"] = int(timeouts.group(1)) if timeouts else 0
    acknowledged = re.search(r"acknowledged: holds=(\d+) orders=(\d+) adjustments=(\d+)", out)
    if acknowledged:
        result.update(zip(("holds", "orders", "adjustments"), map(int, acknowledged.groups())))
    return result


def wrk_together(urls, seconds, connections, script, script_args):
    """One wrk (one thread, `connections` split evenly) per url at once: requests/s and
    requests together, the worse p99, and the sums of what the script counted."""
    runs = [None] * len(urls)

    def run(i):
        runs[i] = wrk(urls[i], seconds, connections // len(urls), 1, script, script_args)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = {key: sum(run[key] for run in runs) for key in runs[0] if key not in ("p50_ms", "p99_ms")}
    total["p50_ms"] = max(run["p50_ms"] for run in runs)
    total["p99_ms"] = max(run["p99_ms"] for run in runs)
    return total


def alternate(targets, rounds, measure):
    """Measures every target once per round, each round starting with another target, so that
    none always follows the same one; returns the median of each figure per target."""
    names = list(targets)
    runs = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            runs[name].append(measure(targets[name]))
            log(f"  round {r + 1} {name}: {runs[name][-1]['rps']:.0f} req/s")
    return {name: median_of(values) for name, values in runs.items()}


def delta(before, after, prefix):
    return sum(v - before.get(k, 0.0) for k, v in after.items() if k.startswith(prefix))


def median_of(runs):
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--testkit", required=True, help="the testkit binary (crates/testkit)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hot-rounds", type=int, default=5,
                        help="rounds of the hot-read comparison, whose ratios are the targets")
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-writes", type=int, default=1_000_000)
    parser.add_argument("--outside-products", type=int, default=100_000,
                        help="products the bulk UPDATE of the outside part changes")
    parser.add_argument("--soak-minutes", type=float, default=10)
    parser.add_argument("--quick", action="store_true",
                        help="1 round of 3 s, 50,000 memory writes, 10,000 outside products, 1 minute soak")
    parser.add_argument("--only", default="", help=f"comma-separated parts of: {','.join(ALL_PARTS)}")
    parser.add_argument("--baseline", action="append", default=[], metavar="NAME=PATH",
                        help="another shopnow binary (an older commit) measured as versioned@NAME "
                             "beside this one in hot, writes, orders and flash")
    parser.add_argument("--json", default=None, help="where to write the results")
    args = parser.parse_args()
    global TESTKIT
    TESTKIT = args.testkit
    if args.quick:
        args.rounds, args.hot_rounds, args.seconds, args.memory_writes = 1, 1, 3, 50_000
        args.outside_products, args.soak_minutes = 10_000, 1
    parts = args.only.split(",") if args.only else DEFAULT_PARTS
    unknown = set(parts) - set(ALL_PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}")
    baselines = dict(b.split("=", 1) for b in args.baseline)

    bench = Bench(args.binary, tempfile.mkdtemp(prefix="shopnow-bench-"))
    w = dict(seconds=args.seconds, connections=args.connections, threads=args.threads)
    results = {"machine": machine(), "rounds": args.rounds, "hot_rounds": args.hot_rounds,
               "seconds": args.seconds, "connections": args.connections, "threads": args.threads,
               "baselines": baselines}
    try:
        comparing = {"hot", "spread", "writes", "orders", "flash", "memory"} & set(parts)
        if comparing:
            log(f"starting {len(STRATEGIES) + len(baselines)} instances, each on a database of {PRODUCTS} products")
            for name in STRATEGIES:
                if name == "article":
                    bench.start(name, "versioned", extra_args=["--article-design"], label="article")
                else:
                    bench.start(name, name)
            for name, path in baselines.items():
                bench.start(f"versioned@{name}", binary=path)
            for instance in bench.instances.values():  # warm every cache with every product
                wrk(instance.url, 2, 16, 1, "spread-reads.lua", [PRODUCTS])
        strategies = {name: bench.instances[name] for name in STRATEGIES if name in bench.instances}
        compared = {**strategies, **{f"versioned@{n}": bench.instances[f"versioned@{n}"]
                                     for n in baselines if f"versioned@{n}" in bench.instances}}

        if "hot" in parts:
            log("hot reads: one product, targets alternating")
            logged = bench.start("versioned-access-log-all", db=bench.instances["versioned"].db,
                                 env={"SHOPNOW_ACCESS_LOG": "all"})
            quiet = bench.start("versioned-rust-log-warn", db=bench.instances["versioned"].db,
                                env={"RUST_LOG": "warn"})
            bare = BareHandler(bench.redis.url, "bench-versioned")
            for url in (logged.url, quiet.url, bare.url):
                wrk(f"{url}/v1/products/42", 1, 4, 1)
            targets = {"livez": bench.instances["versioned"].url + "/livez",
                       "bare: axum + one Redis GET": f"{bare.url}/v1/products/42"}
            targets.update({name: f"{i.url}/v1/products/42" for name, i in compared.items()})
            # A product with a live hold: its copy carries the hold, judged at every read.
            versioned = bench.instances["versioned"].url
            http("POST", f"{versioned}/v1/holds", json.dumps(
                {"items": [{"product_id": 43, "quantity": 1}], "ttl_seconds": 3600}).encode())
            wrk(f"{versioned}/v1/products/43", 1, 4, 1)
            targets["versioned, a product with a live hold"] = f"{versioned}/v1/products/43"
            targets["versioned, SHOPNOW_ACCESS_LOG=all"] = f"{logged.url}/v1/products/42"
            targets["versioned, RUST_LOG=warn"] = f"{quiet.url}/v1/products/42"
            try:
                results["hot"] = alternate(targets, args.hot_rounds, lambda url: wrk(url, **w))
            finally:
                bare.stop()
            bench.retire(logged, quiet)

        if "spread" in parts:
            log(f"reads spread over {PRODUCTS} products")
            results["spread"] = alternate({n: i.url for n, i in strategies.items()}, args.rounds,
                                          lambda url: wrk(url, script="spread-reads.lua",
                                                          script_args=[PRODUCTS], **w))

        if "writes" in parts:
            log("stock adjustments")
            targets = {n: i.url for n, i in compared.items() if n != "article"}
            results["writes"] = alternate(targets, args.rounds,
                                          lambda url: wrk(url, script="adjust.lua",
                                                          script_args=[PRODUCTS, bench.token], **w))
            log("stock adjustments of one product (its row lock)")
            results["writes_one_product"] = alternate(
                targets, args.rounds,
                lambda url: wrk(url, script="adjust.lua", script_args=[1, bench.token], **w))

        if "hot-writes" in parts:
            log(f"hot writes: holds, orders from holds, orders and adjustments over 2 instances "
                f"of each build, {args.connections} clients")
            results["hot_writes"] = hot_writes(bench, baselines, args.rounds, args.seconds,
                                               args.connections)

        if "orders" in parts:
            log("orders")
            targets = {n: i.url for n, i in compared.items() if n in ("versioned", "none") or "@" in n}
            # Every order counted against its client's rate limit in Redis (an allowance it
            # never reaches): what counting costs a write.
            counted = bench.start("versioned-rate-limit-counted", db=bench.instances["versioned"].db,
                                  env={"SHOPNOW_RATE_LIMIT_PER_MINUTE": "100000000",
                                       "SHOPNOW_RATE_LIMIT_BURST": "100000000"})
            targets["versioned, every order counted against a rate limit"] = counted.url
            results["orders"] = alternate(targets, args.rounds,
                                          lambda url: wrk(url, script="order.lua",
                                                          script_args=[PRODUCTS], **w))
            bench.retire(counted)

        if "flash" in parts:
            log("flash sale: one product, 50 writes/s, reads as fast as they come")
            results["flash"] = {name: flash_sale(i, bench.token, args.seconds)
                                for name, i in compared.items()}

        if "shoppers" in parts:
            log("shoppers: 10,000 live holds on one product")
            results["shoppers"] = shoppers(bench, args.hot_rounds, args.seconds, w)

        if "expiry" in parts:
            log("expiry: 10,000 holds on one product lapsing in the same second")
            results["expiry"] = mass_expiry(bench)

        if "pages" in parts:
            log("category pages: pages of 10, 50 and 200 beside a product read, from Postgres, and during a write storm")
            results["pages"] = category_pages(bench, args.hot_rounds, args.seconds, w)

        if "memory" in parts:
            log(f"memory: {args.memory_writes} writes over {PRODUCTS} products (versioned)")
            results["memory"] = memory(bench.instances["versioned"], bench.redis, bench.token,
                                       args.memory_writes)
        bench.retire(*list(bench.instances.values()))

        if "missing" in parts:
            log("missing ids: reads of products that do not exist")
            results["missing"] = missing_ids(bench, w)

        if "outside" in parts:
            log(f"outside the API: one product at a time, then a bulk UPDATE of {args.outside_products}")
            results["outside"] = outside(bench, args.outside_products, w)

        if "replica" in parts:
            log("a replica: what confirming each publish costs a write")
            results["replica"] = replica(bench, args.rounds, w)

        if "tls" in parts:
            log("TLS to Redis: the cached read")
            results["tls"] = tls(bench, args.hot_rounds, w)

        if "near" in parts or "near-hot" in parts:
            log("near cache: two instances with it, two without, the bare handlers")
            results["near"] = near_cache(bench, args.hot_rounds, args.rounds, args.seconds, w,
                                         reads_only="near" not in parts)

        if "soak" in parts:
            log(f"soak: {args.soak_minutes} minutes of mixed load, one instance scraped, one not")
            results["soak"] = soak(bench, args.soak_minutes, args.connections)
    finally:
        bench.stop()

    results["ratios"] = ratios(results)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")


def flash_sale(instance, token, seconds, writer=None, redis=None):
    """Steady writes to one product (through `writer`, by default the instance read) while wrk
    reads it; Postgres reads per write, hit ratio, and with `redis`, Redis GETs per read."""
    product = 7
    writer_url = (writer or instance).url
    before = instance.metrics()
    gets_before = redis_gets(redis) if redis else 0
    stop = threading.Event()
    writes = [0]

    def writer_loop():
        next_at = time.time()
        while not stop.is_set():
            http("POST", f"{writer_url}/v1/products/{product}/stock/adjustments", b'{"delta": -1}', token)
            writes[0] += 1
            next_at += 1 / 50
            time.sleep(max(0.0, next_at - time.time()))

    thread = threading.Thread(target=writer_loop)
    thread.start()
    reads = wrk(f"{instance.url}/v1/products/{product}", seconds, 64, 2)
    stop.set()
    thread.join()
    after = instance.metrics()
    label = 'cache_reads_total{strategy="%s",result="%s"}'
    hits = (delta(before, after, label % (instance.strategy, "hit"))
            + delta(before, after, label % (instance.strategy, "near")))
    total = delta(before, after, 'cache_reads_total{strategy="%s"' % instance.strategy)
    database_reads = delta(before, after, 'cache_database_reads_total{strategy="%s"}' % instance.strategy)
    result = {"reads_per_s": reads["rps"], "read_p99_ms": reads["p99_ms"], "writes": writes[0],
              "postgres_reads": database_reads,
              "postgres_reads_per_write": database_reads / max(writes[0], 1),
              "hit_ratio": hits / total if total else 0.0,
              "from_memory": delta(before, after, label % (instance.strategy, "near")) / total if total else 0.0}
    if redis:
        result["redis_gets_per_read"] = (redis_gets(redis) - gets_before) / max(reads["requests"], 1)
    return result


def hot_writes(bench, baselines, rounds, seconds, connections):
    """Holds, orders from those holds, plain orders and adjustments, in turn (hot-writes.lua), of
    ONE product, and the same mix over products spread over PRODUCTS: `connections` clients over
    two instances of each build (this one and every baseline), each pair on a database of its
    own, targets alternating. Per target: requests/s of the two together, the worse p99, and
    what Postgres holds against what was acknowledged: no acknowledged order missing, no
    product oversold, and what Postgres holds beyond the acknowledged writes (orders, units in
    stock, holds) at most the requests still in flight when wrk stopped counting."""
    builds = {"versioned": bench.binary, **{f"versioned@{n}": p for n, p in baselines.items()}}
    pairs = {}
    for name, binary in builds.items():
        db = bench.database(binary)
        pairs[name] = (db, [bench.start(f"hot-writes-{name}-{i}", db=db, binary=binary)
                            for i in (1, 2)])
    product = 7
    targets = {}
    for name in builds:
        targets[f"{name}, one product"] = (name, 0)
        targets[f"{name}, spread"] = (name, PRODUCTS)

    def state(db):
        """Units in stock, orders, live and converted holds, products oversold (stock below
        zero or below what holds set aside)."""
        return [int(v) for v in psql(db.name, (
            "SELECT (SELECT sum(stock) FROM products), (SELECT count(*) FROM orders), "
            "(SELECT count(*) FROM holds WHERE status = 'held'), "
            "(SELECT count(*) FROM holds WHERE status = 'converted'), "
            "(SELECT count(*) FROM products WHERE stock < 0 OR stock < shopnow_reserved(holds))"
        )).split("|")]

    def measure(target):
        name, spread = target
        db, instances = pairs[name]
        stock, orders, held, converted, _ = state(db)
        run = wrk_together([i.url for i in instances], seconds, connections, "hot-writes.lua",
                           [product, bench.token, spread])
        stock_after, orders_after, held_after, converted_after, oversold = state(db)
        run["oversold_products"] = oversold
        # wrk stops counting at the end of its time with up to `connections` requests sent and
        # not yet answered; the server finishes them. So Postgres may hold up to that many
        # writes more than were acknowledged, never fewer.
        run["acknowledged_orders_not_stored"] = max(0, run["orders"] - (orders_after - orders))
        # Every order takes one unit; every adjustment adds one.
        run["unacknowledged_writes_at_the_end"] = (
            (orders_after - orders - run["orders"])
            + (stock_after - stock + orders_after - orders - run["adjustments"])
            + (held_after - held + converted_after - converted - run["holds"]))
        return run

    for name, (db, instances) in pairs.items():
        for instance in instances:
            wrk(instance.url + f"/v1/products/{product}", 1, 4, 1)
    result = alternate(targets, rounds, measure)
    bench.retire(*[i for _, instances in pairs.values() for i in instances])
    return result


def shoppers(bench, hot_rounds, seconds, w, live_holds=10_000):
    """A product with `live_holds` live holds of one unit (an hour each) against one with none,
    in one database: the cached read through an instance without the near cache and one with it
    (each with its own copies), each copy's size, and new holds per second at 0 live holds and
    at `live_holds`. Every figure is a ratio of two targets of the same run."""
    db = bench.database(products=10)
    plain = bench.start("shoppers", db=db)
    near = bench.start("shoppers-near", db=db, env={"SHOPNOW_NEAR_CACHE": "on"})
    held, none = 1, 2
    for product in (held, none):
        http("PUT", f"{plain.url}/v1/products/{product}/stock",
             json.dumps({"stock": 10_000_000}).encode(), bench.token)
    live = lambda: int(psql(db.name, "SELECT count(*) FROM holds WHERE status = 'held' AND expires_at > now()"))

    def made(run):
        """New holds per second: refusals (503 busy, when the write gate is full) not counted."""
        run["rps"] *= (run["requests"] - run["non_2xx"]) / max(run["requests"], 1)
        return run

    holds = {"at 0 live holds": made(wrk(plain.url, min(seconds, 5), 16, 2, "hold.lua", [held]))}
    log(f"  new holds at 0: {holds['at 0 live holds']['rps']:.0f}/s")
    for _ in range(200):  # bounded: at least 50 holds per run
        if live() >= live_holds:
            break
        wrk(plain.url, 2, 16, 2, "hold.lua", [held])
    holds[f"at {live_holds} live holds"] = made(wrk(plain.url, min(seconds, 5), 16, 2, "hold.lua", [held]))
    holds["live holds at the end"] = live()
    log(f"  new holds at {holds['live holds at the end']}: {holds[f'at {live_holds} live holds']['rps']:.0f}/s")
    targets = {}
    for label, instance in (("", plain), (", near cache", near)):
        for name, product in ((f"{live_holds} live holds", held), ("no holds", none)):
            url = f"{instance.url}/v1/products/{product}"
            wrk(url, 1, 4, 1)
            targets[name + label] = url
    reads = alternate(targets, hot_rounds, lambda url: wrk(url, **w))
    copy_bytes = {name: int(bench.redis.cli("STRLEN", f"bench-shoppers:{{product:{product}}}:current"))
                  for name, product in ((f"{live_holds} live holds", held), ("no holds", none))}
    bench.retire(plain, near)
    return {"holds": holds, "reads": reads, "copy_bytes": copy_bytes}


def mass_expiry(bench, holds=10_000, window=3, lead=30):
    """`holds` holds of one unit on one product, made to lapse in the same whole second `lead`
    seconds from the start (or the next, expiring-holds.lua says why), while a steady stream of adjustments of that product runs: the
    adjustments' p99 over `window` seconds before the lapse and over `window` seconds across
    it, and what a read shows once it passed."""
    db = bench.database(products=10)
    instance = bench.start("expiry", db=db)
    product = 3
    http("PUT", f"{instance.url}/v1/products/{product}/stock",
         json.dumps({"stock": 1_000_000}).encode(), bench.token)
    lapse = int(time.time()) + lead
    lapsing = lambda: int(psql(db.name, (
        "SELECT count(*) FROM holds WHERE status = 'held' "
        f"AND expires_at BETWEEN to_timestamp({lapse - 1}) AND to_timestamp({lapse + 1})")))
    for _ in range(lead):  # bounded: one second each, and stops 2 windows before the lapse
        if lapsing() >= holds or time.time() >= lapse - 2 * window - 3:
            break
        wrk(instance.url, 1, 16, 2, "expiring-holds.lua", [product, lapse])
    made = lapsing()
    writes = lambda: wrk(instance.url, window, 8, 1, "adjust.lua", [product, bench.token])
    time.sleep(max(0.0, lapse - 2 * window - 1 - time.time()))
    before = writes()
    time.sleep(max(0.0, lapse + 0.5 - window / 2 - time.time()))
    across = writes()
    time.sleep(max(0.0, lapse + 2.2 - time.time()))
    read = json.loads(http("GET", f"{instance.url}/v1/products/{product}"))
    bench.retire(instance)
    return {"holds_lapsing_together": made, "writes_before": before, "writes_across_the_lapse": across,
            "p99_across_over_before": across["p99_ms"] / before["p99_ms"],
            "reserved_read_after_the_lapse": read["reserved"]}


def category_pages(bench, hot_rounds, seconds, w):
    """Category pages (the seed's tree: 6 leaves under 3 roots, about 3,333 products under
    `home`): a warm page of 10, 50 and 200 by price beside a cached product read and the bare
    handler, the page of 50 from Postgres (`none`), and the hit rate of `home`'s pages while
    one product of `apparel` takes a storm of writes (and, for contrast, of `apparel`'s)."""
    db = bench.database()
    versioned = bench.start("pages-versioned", db=db)
    none = bench.start("pages-none", "none", db=db)
    bare = BareHandler(bench.redis.url, "bench-pages-versioned")

    def page(instance, limit, category="home"):
        return f"{instance.url}/v1/products?category={category}&sort=price&limit={limit}"

    targets = {"bare: axum + one Redis GET": f"{bare.url}/v1/products/42",
               "versioned product read": f"{versioned.url}/v1/products/42",
               "versioned page of 10": page(versioned, 10),
               "versioned page of 50": page(versioned, 50),
               "versioned page of 200": page(versioned, 200),
               "page of 50 from Postgres (none)": page(none, 50)}
    for url in targets.values():
        wrk(url, 1, 4, 1)
    try:
        results = {"reads": alternate(targets, hot_rounds, lambda url: wrk(url, **w))}
    finally:
        bare.stop()

    def storm(read_category):
        """Writes to product 1 (in `hoodies`, under `apparel`) while pages of `read_category`
        are read: the share of those reads that hit."""
        before = versioned.metrics()
        runs = {}
        writer = threading.Thread(target=lambda: runs.__setitem__("writes", wrk(
            versioned.url, seconds, 16, 1, "adjust.lua", [1, bench.token])))
        writer.start()
        runs["reads"] = wrk(page(versioned, 50, read_category), seconds, 32, 1)
        writer.join()
        after = versioned.metrics()
        label = 'strategy="versioned"'
        hits = delta(before, after, f'cache_page_reads_total{{{label},result="hit"}}')
        others = sum(delta(before, after, f'cache_page_reads_total{{{label},result="{r}"}}')
                     for r in ("miss", "bypass"))
        return {"page_reads_per_s": runs["reads"]["rps"], "writes_per_s": runs["writes"]["rps"],
                "hit_rate": hits / max(1.0, hits + others)}

    results["storm_other_category"] = storm("home")
    results["storm_same_category"] = storm("apparel")
    bench.retire(versioned, none)
    return results


def redis_gets(redis):
    """GET calls Redis answered so far (INFO commandstats)."""
    for line in redis.cli("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_get:"):
            return int(line.split("calls=", 1)[1].split(",", 1)[0])
    return 0


def memory(instance, redis, token, total_writes):
    """Writes in four chunks; after each, Redis keys per product and used_memory."""
    samples = []
    done = lambda: int(psql(instance.db.name, "SELECT sum(version) - count(*) FROM products"))
    start = done()
    for quarter in range(1, 5):
        target = start + total_writes * quarter // 4
        while done() < target:
            wrk(instance.url, 5, 64, 2, "adjust.lua", [PRODUCTS, token])
        per_product = {}
        for key in redis.cli("--scan", "--pattern", f"bench-{instance.name}:*").splitlines():  # versioned
            if not key.endswith(":lease"):
                product = key.split("}")[0]
                per_product[product] = per_product.get(product, 0) + 1
        samples.append({"writes": done() - start, "redis_keys": int(redis.cli("DBSIZE")),
                        "max_keys_per_product": max(per_product.values(), default=0),
                        "products_cached": len(per_product),
                        "used_memory": int(redis.info("used_memory"))})
        log(f"  {samples[-1]}")
    return samples


def missing_ids(bench, w):
    """Reads of ids that were never products: a million distinct ids (each read once or twice),
    and 1,000 ids read over and over. Postgres reads per read, and the keys left in Redis."""
    results = {}
    for strategy in ["versioned", "none"]:
        instance = bench.start(f"missing-{strategy}", strategy)
        for name, count in [("distinct", 1_000_000), ("repeated", 1_000)]:
            before = instance.metrics()
            run = wrk(instance.url, script="missing-reads.lua", script_args=[10_000_001, count], **w)
            after = instance.metrics()
            database_reads = delta(before, after, "cache_database_reads_total")
            keys = len(bench.redis.cli("--scan", "--pattern", f"bench-{instance.name}:*").splitlines())
            results[f"{strategy}, {name}"] = {
                "ids": count, "rps": run["rps"], "p99_ms": run["p99_ms"], "reads": run["requests"],
                "not_found": run["non_2xx"], "postgres_reads_per_read": database_reads / max(run["requests"], 1),
                "redis_keys_after": keys,
            }
            log(f"  {strategy} {name}: {results[f'{strategy}, {name}']}")
        bench.retire(instance)
    return results


class PsqlSession:
    """One psql connection kept open: a statement's result arrives once it has committed."""

    def __init__(self, database):
        self.process = subprocess.Popen(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-Atq"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def run(self, sql):
        """Runs one statement returning one row; returns that row once it committed."""
        self.process.stdin.write(sql.rstrip(";") + ";\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def outside(bench, bulk_products, w):
    """Changes made straight in Postgres (psql), seen through two instances of one deployment."""
    db = bench.database(products=bulk_products)
    a = bench.start("outside-a", db=db)
    b = bench.start("outside-b", db=db, env={"SHOPNOW_CACHE_PREFIX": "bench-outside-a"})
    session = PsqlSession(db.name)

    def version_on(instance, product):
        return json.loads(http("GET", f"{instance.url}/v1/products/{product}"))["version"]

    # One product at a time: its copy cached on both instances, an UPDATE that says nothing of
    # the version, then every instance polled until it serves the new version.
    lags = []
    for product in random.sample(range(1, bulk_products + 1), 200):
        for instance in (a, b):
            version_on(instance, product)
        version = int(session.run(f"UPDATE products SET stock = stock - 1 WHERE id = {product} RETURNING version"))
        committed = time.perf_counter()
        pending = {a.name: a, b.name: b}
        seen = {}
        while pending and time.perf_counter() - committed < 5:
            for name, instance in list(pending.items()):
                if version_on(instance, product) >= version:
                    seen[name] = time.perf_counter() - committed
                    del pending[name]
        lags.append(max(seen.values()) if not pending else float("inf"))
    lags.sort()
    single = {"changes": len(lags), "p50_ms": lags[len(lags) // 2] * 1000,
              "p99_ms": lags[int(len(lags) * 0.99) - 1] * 1000, "max_ms": lags[-1] * 1000}
    log(f"  one product at a time: {single}")

    # Bulk: every product cached, then one UPDATE of all of them, while API writes go on.
    log(f"  caching all {bulk_products} products")
    cached_keys = lambda: len(bench.redis.cli("--scan", "--pattern", "bench-outside-a:*").splitlines())
    for _ in range(20):
        wrk(a.url, 5, 32, 2, "sequential-reads.lua", [bulk_products, 2])
        if cached_keys() >= bulk_products:
            break
    cached = cached_keys()
    # API writes alone, then the statement (alone: while it runs it holds the row lock of every
    # product it changes, so API writes of those products wait for its commit whatever the
    # cache does), then API writes again from its commit on, while the relay publishes.
    drain_window = 3
    api_alone = wrk(a.url, drain_window, w["connections"], w["threads"], "adjust.lua",
                    [bulk_products, bench.token])
    started = time.perf_counter()
    rows = int(session.run(
        "WITH changed AS (UPDATE products SET stock = stock + 1 RETURNING 1) SELECT count(*) FROM changed"))
    committed = time.perf_counter()
    outcome = {}

    def drained():
        while int(psql(db.name, "SELECT count(*) FROM cache_outbox WHERE NOT written_by_instance")) > 0:
            time.sleep(0.02)
        outcome["published_s"] = time.perf_counter() - committed

    thread = threading.Thread(target=drained)
    thread.start()
    api_during = wrk(a.url, drain_window, w["connections"], w["threads"], "adjust.lua",
                     [bulk_products, bench.token])
    thread.join()
    session.close()
    sample = random.sample(range(1, bulk_products + 1), 200)
    current = sum(version_on(a, p) == int(psql(db.name, f"SELECT version FROM products WHERE id = {p}"))
                  for p in sample)
    result = {"single": single,
              "bulk": {"products": rows, "cached_before": cached,
                       "statement_s": committed - started, "published_s": outcome["published_s"],
                       "api_writes_per_s_alone": api_alone["rps"],
                       "api_writes_per_s_first_3s_after_commit": api_during["rps"],
                       "api_write_p99_ms_alone": api_alone["p99_ms"],
                       "api_write_p99_ms_first_3s_after_commit": api_during["p99_ms"],
                       "sampled_products_served_current_after": f"{current}/{len(sample)}"}}
    log(f"  bulk: {result['bulk']}")
    bench.retire(a, b)
    return result


def replica(bench, rounds, w):
    """Stock adjustments with and without SHOPNOW_REDIS_REPLICAS=1, each on its own database,
    both on the bench's Redis, which now has a real replica."""
    replica_server = Redis("--replicaof", "127.0.0.1", str(bench.redis.port))
    bench.redises.append(replica_server)
    deadline = time.time() + 30
    while replica_server.info("master_link_status") != "up" and time.time() < deadline:
        time.sleep(0.1)
    plain = bench.start("replica-unconfirmed")
    confirmed = bench.start("replica-confirmed", env={"SHOPNOW_REDIS_REPLICAS": "1"})
    targets = {"versioned, publishes unconfirmed": plain, "versioned, SHOPNOW_REDIS_REPLICAS=1": confirmed}
    before = {name: i.metrics() for name, i in targets.items()}
    writes = alternate({n: i.url for n, i in targets.items()}, rounds,
                       lambda url: wrk(url, script="adjust.lua", script_args=[PRODUCTS, bench.token], **w))
    for name, instance in targets.items():
        after = instance.metrics()
        writes[name]["unconfirmed"] = delta(before[name], after, "cache_publishes_unconfirmed_total")
    reads = alternate({n: f"{i.url}/v1/products/42" for n, i in targets.items()}, rounds,
                      lambda url: wrk(url, **w))
    bench.retire(plain, confirmed)
    return {"writes": writes, "hot_reads": reads}


def tls(bench, rounds, w):
    """The cached read of one product through a TLS Redis and through a plain one."""
    tls_redis = Redis(tls=True)
    bench.redises.append(tls_redis)
    plain = bench.start("tls-plain")
    secure = bench.start("tls-rediss", redis=tls_redis,
                         env={"SHOPNOW_REDIS_TLS_CA_FILE": tls_redis.ca_file})
    for instance in (plain, secure):
        wrk(f"{instance.url}/v1/products/42", 1, 4, 1)
    targets = {"redis:// (plain TCP)": f"{plain.url}/v1/products/42",
               "rediss:// (TLS)": f"{secure.url}/v1/products/42"}
    before = secure.metrics()
    results = alternate(targets, rounds, lambda url: wrk(url, **w))
    after = secure.metrics()
    results["rediss:// (TLS)"]["bypassed"] = delta(before, after, 'cache_reads_total{strategy="versioned",result="bypass"}')
    bench.retire(plain, secure)
    return results


def near_cache(bench, hot_rounds, rounds, seconds, w, reads_only=False):
    """Two deployments of two instances each on a database of their own, one with the near
    cache, one without, and the bare handlers reading the latter's copies. `reads_only`: the
    hot read comparison alone."""
    deployments = {}
    for name, near in (("near", "on"), ("plain", "off")):
        db = bench.database()
        env = {"SHOPNOW_NEAR_CACHE": near, "SHOPNOW_CACHE_PREFIX": f"bench-{name}-pair"}
        deployments[name] = [bench.start(f"{name}-{n}", db=db, env=env) for n in ("a", "b")]
    near, plain = deployments["near"], deployments["plain"]
    for instance in near + plain:
        wrk(f"{instance.url}/v1/products/42", 1, 4, 1)
    bare = BareHandler(bench.redis.url, "bench-plain-pair")
    bare_memory = BareHandler(bench.redis.url, "bench-plain-pair", "memory")
    wrk(f"{bare_memory.url}/v1/products/42", 1, 4, 1)
    commands = lambda: int(bench.redis.info("total_commands_processed"))

    def measured(url):
        before = commands()
        result = wrk(url, **w)
        result["redis_commands_per_read"] = (commands() - before) / max(result["requests"], 1)
        return result

    try:
        hot = alternate({"bare: axum + one Redis GET": f"{bare.url}/v1/products/42",
                         "bare: axum + a map in memory": f"{bare_memory.url}/v1/products/42",
                         "livez": f"{near[0].url}/livez",
                         "versioned": f"{plain[0].url}/v1/products/42",
                         "versioned + near cache": f"{near[0].url}/v1/products/42"},
                        hot_rounds, measured)
    finally:
        bare.stop()
        bare_memory.stop()
    if reads_only:
        bench.retire(*near, *plain)
        return {"hot": hot}

    def held_writes(pair):
        """Stock adjustments of product 1 through one instance while the other reads it."""
        def measure(url):
            reader = subprocess.Popen(["wrk", "-t1", "-c2", f"-d{seconds + 1}s",
                                       f"{pair[1].url}/v1/products/1"], stdout=subprocess.DEVNULL)
            try:
                return wrk(url, script="adjust.lua", script_args=[1, bench.token], **w)
            finally:
                reader.wait()
        return measure

    writes = {}
    for r in range(rounds):
        for name in (["near", "plain"] if r % 2 == 0 else ["plain", "near"]):
            label = "versioned + near cache" if name == "near" else "versioned"
            writes.setdefault(label, []).append(held_writes(deployments[name])(deployments[name][0].url))
            log(f"  round {r + 1} writes to a held product, {label}: {writes[label][-1]['rps']:.0f} req/s")
    writes = {name: median_of(runs) for name, runs in writes.items()}

    flash = {}
    for name, pair in (("versioned + near cache", near), ("versioned", plain)):
        flash[name] = flash_sale(pair[0], bench.token, seconds, writer=pair[1], redis=bench.redis)
    bench.retire(*near, *plain)
    return {"hot": hot, "writes_to_a_held_product": writes, "flash": flash}


def soak(bench, minutes, connections):
    """Mixed load on two instances at once for `minutes`; one is scraped every 15 s, the other
    never. Resident memory of both every 10 s."""
    unscraped = bench.start("soak-unscraped")
    scraped = bench.start("soak-scraped")
    seconds = int(minutes * 60)
    stop = threading.Event()
    samples = []

    def sampler():
        started = time.time()
        next_scrape = started
        while not stop.wait(1.0):
            now = time.time()
            if now >= next_scrape:
                scraped.metrics()
                next_scrape += 15
            if int(now - started) % 10 == 0 and (not samples or now - started - samples[-1]["t_s"] >= 9):
                samples.append({"t_s": round(now - started), "unscraped_rss": unscraped.rss_bytes(),
                                "scraped_rss": scraped.rss_bytes()})
                log(f"  {samples[-1]}")

    thread = threading.Thread(target=sampler)
    thread.start()
    runs = {}

    def load(name, instance):
        runs[name] = wrk(instance.url, seconds, connections // 2, 1, "mixed.lua", [PRODUCTS, bench.token])

    loaders = [threading.Thread(target=load, args=(n, i)) for n, i in
               [("unscraped", unscraped), ("scraped", scraped)]]
    for loader in loaders:
        loader.start()
    for loader in loaders:
        loader.join()
    stop.set()
    thread.join()
    after_first_minute = [s for s in samples if s["t_s"] >= 60]
    growth = {}
    for which in ("unscraped", "scraped"):
        series = [s[f"{which}_rss"] for s in after_first_minute] or [0]
        growth[which] = {"rss_at_1_min": series[0], "rss_max": max(series), "rss_end": series[-1],
                         "growth_after_1_min": max(series) - series[0],
                         "requests": runs[which]["requests"], "rps": runs[which]["rps"]}
    bench.retire(unscraped, scraped)
    return {"samples": samples, "summary": growth}


def ratios(results):
    r = {}
    hot = results.get("hot")
    if hot:
        v = hot["versioned"]
        r["versioned_over_livez"] = v["rps"] / hot["livez"]["rps"]
        r["versioned_over_bare"] = v["rps"] / hot["bare: axum + one Redis GET"]["rps"]
        r["versioned_p99_over_bare_p99"] = v["p99_ms"] / hot["bare: axum + one Redis GET"]["p99_ms"]
        r["default_log_over_rust_log_warn"] = v["rps"] / hot["versioned, RUST_LOG=warn"]["rps"]
        r["versioned_over_ttl"] = v["rps"] / hot["ttl"]["rps"]
        r["versioned_over_none"] = v["rps"] / hot["none"]["rps"]
        r["versioned_over_article"] = v["rps"] / hot["article"]["rps"]
        r["versioned_p99_over_ttl_p99"] = v["p99_ms"] / hot["ttl"]["p99_ms"]
        r["access_log_all_over_default"] = hot["versioned, SHOPNOW_ACCESS_LOG=all"]["rps"] / v["rps"]
        r["held_product_over_plain"] = hot["versioned, a product with a live hold"]["rps"] / v["rps"]
        for name in hot:
            if name.startswith("versioned@"):
                r[f"hot_versioned_over_{name}"] = v["rps"] / hot[name]["rps"]
    writes = results.get("writes")
    if writes:
        r["writes_versioned_over_ttl"] = writes["versioned"]["rps"] / writes["ttl"]["rps"]
        for name in writes:
            if name.startswith("versioned@"):
                r[f"writes_versioned_over_{name}"] = writes["versioned"]["rps"] / writes[name]["rps"]
    one_product = results.get("writes_one_product")
    if one_product:
        for name in one_product:
            if name.startswith("versioned@"):
                r[f"one_product_writes_versioned_over_{name}"] = (one_product["versioned"]["rps"]
                                                                  / one_product[name]["rps"])
    hot = results.get("hot_writes")
    if hot:
        for name in {t.split(", ")[0] for t in hot if t.startswith("versioned@")}:
            for kind in ("one product", "spread"):
                new, old = hot[f"versioned, {kind}"], hot[f"{name}, {kind}"]
                key = kind.replace(" ", "_")
                r[f"hot_writes_{key}_over_{name}"] = new["rps"] / old["rps"]
                r[f"hot_writes_{key}_p99_over_{name}"] = new["p99_ms"] / old["p99_ms"]
    orders = results.get("orders")
    if orders:
        r["orders_versioned_over_none"] = orders["versioned"]["rps"] / orders["none"]["rps"]
        r["orders_p99_versioned_over_none"] = orders["versioned"]["p99_ms"] / orders["none"]["p99_ms"]
        counted = orders.get("versioned, every order counted against a rate limit")
        if counted:
            r["orders_rate_limited_over_not"] = counted["rps"] / orders["versioned"]["rps"]
            r["orders_p99_rate_limited_over_not"] = counted["p99_ms"] / orders["versioned"]["p99_ms"]
    replica_part = results.get("replica")
    if replica_part:
        w = replica_part["writes"]
        r["writes_confirmed_over_unconfirmed"] = (w["versioned, SHOPNOW_REDIS_REPLICAS=1"]["rps"]
                                                  / w["versioned, publishes unconfirmed"]["rps"])
    near_part = results.get("near")
    if near_part:
        hot_near = near_part["hot"]
        bare = hot_near["bare: axum + one Redis GET"]
        r["near_over_bare"] = hot_near["versioned + near cache"]["rps"] / bare["rps"]
        r["near_p99_over_bare_p99"] = hot_near["versioned + near cache"]["p99_ms"] / bare["p99_ms"]
        r["near_redis_commands_per_read"] = hot_near["versioned + near cache"]["redis_commands_per_read"]
        r["versioned_over_bare_near_part"] = hot_near["versioned"]["rps"] / bare["rps"]
        r["near_over_bare_memory"] = (hot_near["versioned + near cache"]["rps"]
                                      / hot_near["bare: axum + a map in memory"]["rps"])
    if near_part and "writes_to_a_held_product" in near_part:
        held = near_part["writes_to_a_held_product"]
        r["held_writes_near_over_plain"] = held["versioned + near cache"]["rps"] / held["versioned"]["rps"]
        r["held_writes_p99_near_minus_plain_ms"] = (held["versioned + near cache"]["p99_ms"]
                                                    - held["versioned"]["p99_ms"])
        flash = near_part["flash"]
        r["flash_reads_near_over_plain"] = (flash["versioned + near cache"]["reads_per_s"]
                                            / flash["versioned"]["reads_per_s"])
    shoppers_part = results.get("shoppers")
    if shoppers_part:
        reads, holds, sizes = (shoppers_part[k] for k in ("reads", "holds", "copy_bytes"))
        crowded = next(name for name in sizes if name != "no holds")
        r["shoppers_read_over_none"] = reads[crowded]["rps"] / reads["no holds"]["rps"]
        r["shoppers_near_read_over_none"] = (reads[crowded + ", near cache"]["rps"]
                                             / reads["no holds, near cache"]["rps"])
        r["shoppers_copy_bytes_over_none"] = sizes[crowded] / sizes["no holds"]
        at_zero, at_crowd = (holds[k]["rps"] for k in holds if k.startswith("at "))
        r["shoppers_new_holds_at_crowd_over_at_0"] = at_crowd / at_zero
    expiry = results.get("expiry")
    if expiry:
        r["expiry_write_p99_across_over_before"] = expiry["p99_across_over_before"]
    tls_part = results.get("tls")
    if tls_part:
        r["hot_tls_over_plain"] = tls_part["rediss:// (TLS)"]["rps"] / tls_part["redis:// (plain TCP)"]["rps"]
    return r


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return {"cpus": os.cpu_count(), "cpu": cpu, "date": time.strftime("%Y-%m-%d")}


if __name__ == "__main__":
    main()
