#!/usr/bin/env python3
"""The generalization benchmark tables (README) from docs/eval/NAME-*.json.

    scripts/eval_table.py NAME[=LABEL] ...           the benchmark rows
    scripts/eval_table.py --folds NAME[=LABEL] ...   leave-one-family-out, fold by fold
    scripts/eval_table.py --humans NAME[=LABEL] ...  false-positive rates on human texts
                                                     the references do not cover
    scripts/eval_table.py --ceiling NAME             each unseen-family fold beside what it
                                                     scores with every reference of its family
    scripts/eval_table.py --errors NAME              where the `test` row's errors are, by
                                                     domain and by model

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


def ceiling(name):
    """Each leave-one-family-out fold beside the same texts scored with every
    reference, the family's included. Those texts are the family's texts of
    `test.jsonl` plus every human text, and with every reference they get the
    labels of the `test` row: the human recall is that row's, the family's
    recall its breakdown's. No number of added references does better than
    this without a better style space."""
    test, lofo = report(name, "test"), report(name, "lofo")
    human = test["human_rec"]
    print("| family | unseen | + 100 refs | every reference | family recall with every reference | family recall needed for 93 |")
    print("|---|---|---|---|---|---|")
    sums = [0.0, 0.0, 0.0]
    for f in lofo["folds"]:
        fam = test["breakdowns"]["family"][f["family"]]["machine_rec"]
        every = (human + fam) / 2
        need = 2 * 93 - human
        for i, v in enumerate([f["unseen"]["avg_rec"], f["adapted"]["avg_rec"], every]):
            sums[i] += v
        print(
            f"| {f['family']} | {f['unseen']['avg_rec']:.2f} | {f['adapted']['avg_rec']:.2f} "
            f"| {every:.2f} | {fam:.2f} | {need:.2f} |"
        )
    n = len(lofo["folds"])
    print(f"| mean | {sums[0] / n:.2f} | {sums[1] / n:.2f} | {sums[2] / n:.2f} | | |")
    print()
    print(
        f"AvgRec. Every fold scores all {test['n_human']} human texts of `test.jsonl`; with every "
        f"reference their recall is the `test` row's, {human:.2f}%."
    )


def errors(name):
    """The `test` row's mislabelled texts by domain and by model (texts
    without a verdict count as not machine, as in the row)."""
    by = report(name, "test")["breakdowns"]

    def missed(s):
        human = s["n_human"] * (100 - s["human_rec"]) / 100
        machine = s["n_machine"] * (100 - s["machine_rec"]) / 100
        return round(human), round(machine)

    total = sum(sum(missed(s)) for s in by["domain"].values())
    print(f"| domain | texts | human texts called machine | machine texts called human | share of the {total} errors | HumanRec | MachineRec |")
    print("|---|---|---|---|---|---|---|")
    domains = sorted(by["domain"].items(), key=lambda kv: -sum(missed(kv[1])))
    for d, s in domains:
        h, m = missed(s)
        if h + m == 0:
            continue
        hr = f"{s['human_rec']:.1f}" if s["n_human"] else "-"
        mr = f"{s['machine_rec']:.1f}" if s["n_machine"] else "-"
        print(f"| {d} | {s['n']} | {h} | {m} | {100 * (h + m) / total:.1f}% | {hr} | {mr} |")
    print()
    print("| model | texts | called human | MachineRec |")
    print("|---|---|---|---|")
    models = [(m, s) for m, s in by["model"].items() if s["n_machine"]]
    for m, s in sorted(models, key=lambda kv: -missed(kv[1])[1])[:10]:
        print(f"| {m} | {s['n_machine']} | {missed(s)[1]} | {s['machine_rec']:.1f} |")


def main():
    args = sys.argv[1:]
    if args and args[0] == "--folds":
        return folds(args[1:])
    if args and args[0] == "--humans":
        return humans(args[1:])
    if len(args) == 2 and args[0] == "--ceiling":
        return ceiling(args[1])
    if len(args) == 2 and args[0] == "--errors":
        return errors(args[1])
    print("| configuration | `test` | OUTFOX | OUTFOX + refs (TFIA) | unseen family (mean of 5) | + 100 refs |")
    print("|---|---|---|---|---|---|")
    for arg in args:
        name, _, label = arg.partition("=")
        print(f"| {label or name} | " + " | ".join(row(name)) + " |")
    print()
    print("Each cell: AvgRec / AUROC / TPR at 1% FPR.")


if __name__ == "__main__":
    main()
