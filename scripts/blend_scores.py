#!/usr/bin/env python3
"""How the neighbours' score and the classifier's probability would decide
if blended at other weights: reads `detective eval --scores FILE` output and
prints, per weight, AUROC, TPR at 1% FPR, AvgRec of `score >= 0.5`, and the
best AvgRec any single threshold reaches on that file (a ceiling measured
on the scored file itself, so never a setting to ship), beside the AvgRec
of the majority label.

    scripts/blend_scores.py SCORES.jsonl [--weights 0,0.2,0.5,1]

Standard library only.
"""
import argparse
import json


def auroc(pos, neg):
    """Probability that a machine text outscores a human one (ties count half)."""
    ranked = sorted([(s, 1) for s in pos] + [(s, 0) for s in neg])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mid = (i + j + 1) / 2  # 1-based mean rank of the tie block
        rank_sum += mid * sum(1 for _, y in ranked[i:j] if y)
        i = j
    n_pos, n_neg = len(pos), len(neg)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def tpr_at(pos, neg, fpr):
    """Share of machine texts above the lowest threshold that keeps human
    texts above it at or under `fpr`."""
    neg = sorted(neg)
    allowed = int(fpr * len(neg))
    threshold = neg[len(neg) - allowed - 1]
    return sum(1 for s in pos if s > threshold) / len(pos)


def avg_rec(pos, neg, threshold):
    machine = sum(1 for s in pos if s >= threshold) / len(pos)
    human = sum(1 for s in neg if s < threshold) / len(neg)
    return 50 * (machine + human)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scores")
    ap.add_argument("--weights", default="0,0.2,0.35,0.5,0.65,0.8,1")
    args = ap.parse_args()
    rows = [json.loads(line) for line in open(args.scores) if line.strip()]
    machine = [r for r in rows if r["label"] == "machine"]
    human = [r for r in rows if r["label"] == "human"]
    if not machine or not human:
        raise SystemExit(f"{args.scores}: needs machine and human texts")
    if any(r["classifier"] is None for r in rows):
        print("note: some texts have no classifier probability; their neighbours' score stands in")
    majority = 50 * (
        sum(r["majority"] == "machine" for r in machine) / len(machine)
        + sum(r["majority"] == "human" for r in human) / len(human)
    )
    print(f"{args.scores}: {len(machine)} machine, {len(human)} human texts; "
          f"majority label AvgRec {majority:.2f}\n")
    print("| classifier weight | AUROC | TPR@1%FPR | AvgRec, score >= 0.5 | best AvgRec of any threshold (on this file) |")
    print("|---|---|---|---|---|")
    for w in (float(x) for x in args.weights.split(",")):
        def blended(r):
            p = r["classifier"] if r["classifier"] is not None else r["neighbours_score"]
            return (1 - w) * r["neighbours_score"] + w * p
        pos = [blended(r) for r in machine]
        neg = [blended(r) for r in human]
        # The lowest threshold among those with the best AvgRec.
        best = max(((avg_rec(pos, neg, t / 100), t / 100) for t in range(1, 100)),
                   key=lambda x: (x[0], -x[1]))
        print(f"| {w:.2f} | {auroc(pos, neg):.4f} | {tpr_at(pos, neg, 0.01):.3f} | "
              f"{avg_rec(pos, neg, 0.5):.2f} | {best[0]:.2f} (at {best[1]:.2f}) |")


if __name__ == "__main__":
    main()
