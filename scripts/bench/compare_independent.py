"""Compares a multi-branch training run with its branches trained independently.

Reads OUT/summary.json (written by `adascale train` for a [supernet] config) and
OUT/independent/summary.json (written by `adascale train --independent`) and prints a markdown
table: per-branch test accuracy side by side, and the total cost of both ways in wall time and
training images processed (forward + backward passes).
"""
import json
import sys


def main(out):
    with open(f"{out}/summary.json") as f:
        sup = json.load(f)
    with open(f"{out}/independent/summary.json") as f:
        ind = json.load(f)
    twins = {b["name"]: b for b in ind["branches"]}
    print("| branch | M MACs | params | multi-branch acc | independent acc | difference |")
    print("|---|---|---|---|---|---|")
    worst = None
    for b in sup["branches"]:
        t = twins.get(b["name"])
        if t is None:
            continue
        diff = 100 * (b["accuracy"] - t["accuracy"])
        worst = diff if worst is None else min(worst, diff)
        print(f"| {b['name']} | {b['macs'] / 1e6:.2f} | {b['params']:,} | "
              f"{100 * b['accuracy']:.2f}% | {100 * t['accuracy']:.2f}% | {diff:+.2f} pt |")
    macs = [b["macs"] for b in sup["branches"]]
    ind_seconds = sum(t["seconds"] for t in twins.values())
    ind_images = sum(t["images"] for t in twins.values())
    print()
    print(f"branches: {len(sup['branches'])} (independent twins: {len(twins)}), "
          f"MACs span {max(macs) / min(macs):.1f}x; worst difference {worst:+.2f} pt")
    print(f"standalone backbone (warm-up phase): {100 * sup['backbone_accuracy']:.2f}%")
    print()
    print("| | wall time | training images |")
    print("|---|---|---|")
    phases = ", ".join(f"{p['phase']} {p['seconds']:.0f} s" for p in sup["phases"])
    print(f"| multi-branch, all phases ({phases}) | {sup['total_seconds']:.0f} s | "
          f"{sup['train_images']:,} |")
    print(f"| {len(twins)} independent models, {ind['epochs']} epochs each | {ind_seconds:.0f} s | "
          f"{ind_images:,} |")
    print(f"| ratio | {sup['total_seconds'] / ind_seconds:.1%} | "
          f"{sup['train_images'] / ind_images:.1%} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/supernet_vs_independent")
