#!/usr/bin/env python3
"""The generalization benchmark tables (README) from docs/eval/NAME-*.json.

    scripts/eval_table.py NAME[=LABEL] ...           the benchmark rows
    scripts/eval_table.py --folds NAME[=LABEL] ...   leave-one-family-out, fold by fold
    scripts/eval_table.py --humans NAME[=LABEL] ...  false-positive rates on human texts
                                                     the references do not cover

A row the configuration was not run on shows as "-".
"""
import json
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "eval"


def cell(s):
    return f"{s['avg_rec']:.2f} / {s['auroc']:.3f} / {s['tpr_at_1pct_fpr']:.3f}"


def report(name, kind):
    path = DOCS / f"{name}-{kind}.json"
    return json.loads(path.read_text()) if path.exists() else None


def row(name):
    def one(kind):
        r = report(name, kind)
        return cell(r) if r else "-"

    lofo = report(name, "lofo")
    return [
        one("test"),
        one("ood"),
        one("tfia"),
        cell(lofo["mean_unseen"]) if lofo else "-",
        cell(lofo["mean_adapted"]) if lofo else "-",
    ]


def leaky(fold):
    seen = fold.get("encoder_trained_on_family", "absent")
    return {True: "yes", False: "no", None: "yes (assumed)"}.get(seen, "not recorded")


def folds(args):
    print("| configuration | unseen family | leaky | unseen | + 100 refs |")
    print("|---|---|---|---|---|")
    for arg in args:
        name, _, label = arg.partition("=")
        for f in report(name, "lofo")["folds"]:
            print(f"| {label or name} | {f['family']} | {leaky(f)} | {cell(f['unseen'])} | {cell(f['adapted'])} |")
    print()
    print("Each cell: AvgRec / AUROC / TPR at 1% FPR. Leaky: the encoder was trained on the family.")


def humans(args):
    """False-positive rate (percent of human texts labelled machine; no
    verdict counts as not machine) per set of scripts/foreign_human_set.py."""
    print("| configuration | other languages | English, another domain | no verdict |")
    print("|---|---|---|---|")
    for arg in args:
        name, _, label = arg.partition("=")
        r = report(name, "humans")
        if r is None:
            print(f"| {label or name} | - | - | - |")
            continue
        by = r["breakdowns"]["source"]
        english = [s for s in by if s == "manpages"]  # the English originals' package
        other = [s for s in by if s != "manpages"]

        def fpr(sources):
            n = sum(by[s]["n_human"] for s in sources)
            ok = sum(by[s]["human_rec"] * by[s]["n_human"] / 100 for s in sources)
            return f"{100 - 100 * ok / n:.1f}% of {n}" if n else "-"

        print(f"| {label or name} | {fpr(other)} | {fpr(english)} | {r.get('abstained', 0)} |")
    print()
    print("False-positive rate of the label; texts without a verdict count as not machine.")


def main():
    args = sys.argv[1:]
    if args and args[0] == "--folds":
        return folds(args[1:])
    if args and args[0] == "--humans":
        return humans(args[1:])
    print("| configuration | `test` | OUTFOX | OUTFOX + refs (TFIA) | unseen family (mean of 5) | + 100 refs |")
    print("|---|---|---|---|---|---|")
    for arg in args:
        name, _, label = arg.partition("=")
        print(f"| {label or name} | " + " | ".join(row(name)) + " |")
    print()
    print("Each cell: AvgRec / AUROC / TPR at 1% FPR.")


if __name__ == "__main__":
    main()
