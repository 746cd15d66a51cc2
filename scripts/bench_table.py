#!/usr/bin/env python3
"""Prints a Markdown comparison of two bench JSON files (ours, reference)."""
import json
import sys

ours, ref = (json.load(open(p)) for p in sys.argv[1:3])
key = lambda r: (r["workload"], r["batch"], r["length"])
refs = {key(r): r for r in ref["rows"]}
print(f"\n| workload | batch | length | detective texts/s | tokens/s | GFLOP/s "
      f"| reference texts/s | tokens/s | GFLOP/s | speed-up |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in ours["rows"]:
    b = refs.get(key(r))
    if not b:
        continue
    shape = (r["batch"], r["length"]) if r["workload"] == "fixed" else (f"{r['texts']} texts", "mixed")
    print(f"| {r['workload']} | {shape[0]} | {shape[1]} | {r['texts_per_s']:.1f} | {r['tokens_per_s']:.0f} "
          f"| {r['gflops']:.1f} | {b['texts_per_s']:.1f} | {b['tokens_per_s']:.0f} | {b['gflops']:.1f} "
          f"| {b['seconds'] / r['seconds']:.2f}x |")
