#!/usr/bin/env python3
"""The generalization benchmark table (README) from docs/eval/NAME-*.json.

    scripts/eval_table.py NAME[=LABEL] ...
"""
import json
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "eval"


def cell(avg_rec, auroc, tpr):
    return f"{avg_rec:.2f} / {auroc:.3f} / {tpr:.3f}"


def row(name):
    def one(kind):
        r = json.loads((DOCS / f"{name}-{kind}.json").read_text())
        return cell(r["avg_rec"], r["auroc"], r["tpr_at_1pct_fpr"])

    lofo = json.loads((DOCS / f"{name}-lofo.json").read_text())
    u, a = lofo["mean_unseen"], lofo["mean_adapted"]
    return [
        one("test"),
        one("ood"),
        one("tfia"),
        cell(u["avg_rec"], u["auroc"], u["tpr_at_1pct_fpr"]),
        cell(a["avg_rec"], a["auroc"], a["tpr_at_1pct_fpr"]),
    ]


def main():
    print("| configuration | `test` | OUTFOX | OUTFOX + refs (TFIA) | unseen family (mean of 5) | + 100 refs |")
    print("|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        name, _, label = arg.partition("=")
        print(f"| {label or name} | " + " | ".join(row(name)) + " |")
    print()
    print("Each cell: AvgRec / AUROC / TPR at 1% FPR.")


if __name__ == "__main__":
    main()
