#!/usr/bin/env python3
"""Load benchmark of `detective serve` with a real HTTP load tool (wrk), next
to the encoder-only throughput of `detective bench` on the same texts, in one
run on one machine:

    python3 scripts/bench_load.py [--seconds 20] [--postgres URL]

1. `detective bench --mixed test.jsonl`: encoder-only texts/s;
2. wrk on `POST /detect` (one text of test.jsonl per request, cycling) at
   concurrency 1, 8 and 32: requests/s, p50/p99 latency;
3. the same at concurrency 8 while a writer posts references (mixed);
4. insert-to-visible latency on one process (POST /reference, then the
   text's nearest neighbour is the new reference) and, with --postgres (an
   empty database), across two replicas on one PostgreSQL.

Needs `wrk` (Debian package) and a release build. Prints a Markdown table.
wrk runs one thread: on a small machine the load tool shares the cores with
the service, and more client threads would take CPU from the encoder.
"""
import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "detective")
KEY = "bench-admin-key-0123456789abcdef"


def call(base, path, body=None, method=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + KEY)
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"null")


def serve(db, log):
    p = subprocess.Popen(
        [BIN, "serve", "--listen", "127.0.0.1:0", "--db", db],
        env={**os.environ, "DETECTIVE_ADMIN_KEY": KEY},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    base = None
    for line in p.stderr:
        log.write(line)
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            base = m.group(1)
            break
    threading.Thread(target=lambda: [log.write(l) for l in p.stderr], daemon=True).start()
    while True:
        try:
            urllib.request.urlopen(base + "/ready", timeout=5)
            return p, base
        except Exception:
            time.sleep(0.5)


def wrk(base, bodies_lua, conc, seconds):
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(conc), "-d", f"{seconds}s", "--latency", "-s", bodies_lua, base + "/detect"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def lat(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        v, unit = float(m.group(1)), m.group(2)
        return v * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, lat(50), lat(99), int(errors.group(1)) if errors else 0


def lua_script(texts, path):
    bodies = [json.dumps({"text": t}) for t in texts]
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["content-type"] = "application/json"\n')
        f.write(f'wrk.headers["authorization"] = "Bearer {KEY}"\n')
        f.write("bodies = {\n")
        for b in bodies:
            f.write("  " + json.dumps(b) + ",\n")
        f.write("}\ni = 0\nrequest = function()\n  i = i % #bodies + 1\n")
        f.write("  return wrk.format(nil, nil, nil, bodies[i])\nend\n")


def visible_latency(writer, reader, n, tag):
    """Seconds from POST /reference on `writer` until the text's nearest
    neighbour on `reader` is the new reference; the median of n."""
    times = []
    for i in range(n):
        text = f"Insert-to-visible probe {tag} {i} {random.random()}: a sentence of its own."
        t0 = time.time()
        made = call(writer, "/reference", {"text": text, "label": "machine", "model": "probe", "family": "probe"})
        while True:
            v = call(reader, "/detect", {"text": text, "k": 1, "explain": True})
            if v["neighbours"][0]["id"] == made["id"]:
                break
        times.append(time.time() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--texts", default=os.path.join(ROOT, "..", "shared", "corpus", "test.jsonl"))
    ap.add_argument("--count", type=int, default=512)
    ap.add_argument("--postgres", help="an empty PostgreSQL database for the two-replica figure")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found (apt-get install wrk)")
    rnd = random.Random(7)
    texts = [json.loads(l)["text"] for l in open(args.texts)]
    texts = rnd.sample(texts, min(args.count, len(texts)))
    work = tempfile.mkdtemp(prefix="detective-bench-")
    with open(os.path.join(work, "texts.jsonl"), "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    lua = os.path.join(work, "bodies.lua")
    lua_script(texts, lua)
    log = open(os.path.join(work, "serve.log"), "w")
    rows = []

    enc = subprocess.run(
        [BIN, "bench", "--batches", "1", "--lengths", "128", "--reps", "3", "--mixed", os.path.join(work, "texts.jsonl"),
         "--mixed-count", str(len(texts)), "--json", os.path.join(work, "bench.json")],
        capture_output=True, text=True, check=True,
    )
    bench = json.load(open(os.path.join(work, "bench.json")))
    encoder_tps = next(r["texts_per_s"] for r in bench["rows"] if r["workload"] == "mixed")
    print(f"encoder only (detective bench, mixed): {encoder_tps} texts/s", file=sys.stderr)

    proc, base = serve(os.path.join(work, "bench.db"), log)
    try:
        for conc in (1, 8, 32):
            rps, p50, p99, errors = wrk(base, lua, conc, args.seconds)
            rows.append((f"detect, concurrency {conc}", rps, p50, p99, errors))
            print(rows[-1], file=sys.stderr)
        stop = threading.Event()
        written = [0]

        def writer():
            i = 0
            while not stop.is_set():
                i += 1
                call(base, "/reference", {"text": f"bench writer {i} {random.random()} " + rnd.choice(texts)[:300], "label": "machine", "model": "bench", "family": "bench"})
                written[0] += 1

        th = threading.Thread(target=writer, daemon=True)
        th.start()
        rps, p50, p99, errors = wrk(base, lua, 8, args.seconds)
        stop.set()
        th.join()
        rows.append((f"detect, concurrency 8, with a writer ({written[0] / args.seconds:.1f} refs/s)", rps, p50, p99, errors))
        one = visible_latency(base, base, 20, "one")
    finally:
        proc.terminate()
        proc.wait()

    two = None
    if args.postgres:
        a, base_a = serve(args.postgres, log)
        b, base_b = serve(args.postgres, log)
        try:
            two = visible_latency(base_a, base_b, 20, "two")
        finally:
            for p in (a, b):
                p.terminate()
                p.wait()

    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
    print(f"\n{os.cpu_count()} cores ({cpu}); {len(texts)} texts of {os.path.basename(args.texts)}, one per request; {args.seconds} s per row\n")
    print("| workload | texts/s | share of encoder-only | p50 ms | p99 ms | non-2xx |")
    print("|---|---|---|---|---|---|")
    for name, rps, p50, p99, errors in rows:
        share = f"{100 * rps / encoder_tps:.0f}%" if encoder_tps else "-"
        print(f"| {name} | {rps:.1f} | {share} | {p50:.0f} | {p99:.0f} | {errors} |")
    print(f"| encoder only (`detective bench`, same texts) | {encoder_tps:.1f} | 100% | | | |")
    print(f"\ninsert-to-visible, one process: median {1000 * one:.0f} ms (20 references)")
    if two is not None:
        print(f"insert-to-visible, two replicas on one PostgreSQL: median {1000 * two:.0f} ms (20 references)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
