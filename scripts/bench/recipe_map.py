"""Places multi-branch training recipes against the two targets they are held to.

Each argument LABEL=DIR names a comparison folder as compare_independent.py reads it:
DIR/summary.json from `adascale train` with a [supernet] config and DIR/independent/summary.json
from `adascale train --independent`. The two should come from one timing window (run one after
the other, nothing else running), since the wall-time share is only as good as that pairing.

Prints a markdown table, one row per folder: the wall-time and image shares of the twins'
cost, the mean and worst per-branch difference to the twins, and how many branches are within
1 pt. With --svg FILE it also draws each folder at its wall-time share (x), its worst and its
mean branch difference (y) joined by a line, over the region where both targets hold (wall
time <= 20%, every branch >= -1 pt), written to a temporary file and renamed.

usage: recipe_map.py LABEL=DIR [LABEL=DIR ...] [--svg FILE]
"""
import html
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_independent import take_option, write_atomically  # noqa: E402

WALL_TARGET, GAP_TARGET = 20.0, -1.0


def load(label, folder):
    try:
        with open(os.path.join(folder, "summary.json")) as f:
            sup = json.load(f)
        with open(os.path.join(folder, "independent", "summary.json")) as f:
            ind = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"recipe_map.py: {label}: cannot read {folder}: {e}")
    try:
        twins = {b["name"]: b for b in ind["branches"]}
        gaps = {b["name"]: 100 * (b["accuracy"] - twins[b["name"]]["accuracy"])
                for b in sup["branches"] if b["name"] in twins}
        seconds = sum(t["seconds"] for t in twins.values())
        images = sum(t["images"] for t in twins.values())
        largest = max(sup["branches"], key=lambda b: b["macs"])["name"]
        wall, image_share = sup["total_seconds"] / seconds, sup["train_images"] / images
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
        sys.exit(f"recipe_map.py: {label}: {folder} is not a comparison folder "
                 f"({type(e).__name__}: {e})")
    if not gaps:
        sys.exit(f"recipe_map.py: {label}: no branch of {folder} has a twin")
    return {
        "label": label,
        "wall": 100 * wall,
        "images": 100 * image_share,
        "mean": sum(gaps.values()) / len(gaps),
        "worst": min(gaps.values()),
        "worst_name": min(gaps, key=gaps.get),
        "within": sum(g >= GAP_TARGET for g in gaps.values()),
        "count": len(gaps),
        "largest": gaps.get(largest),
    }


def map_svg(points):
    left, top, plot_w, plot_h, right, bottom = 70, 60, 460, 320, 260, 50
    walls = [p["wall"] for p in points] + [WALL_TARGET]
    gaps = [p["worst"] for p in points] + [p["mean"] for p in points] + [GAP_TARGET, 0.0]
    x_lo, x_hi = min(walls) - 1.0, max(walls) + 1.0
    y_lo, y_hi = min(gaps) - 0.5, 0.5
    x = lambda v: left + (v - x_lo) / (x_hi - x_lo) * plot_w
    y = lambda v: top + (y_hi - v) / (y_hi - y_lo) * plot_h
    width, height = left + plot_w + right, top + plot_h + bottom
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           '<text x="10" y="20" font-size="14" font-weight="bold">Multi-branch recipes against '
           'their independently trained twins</text>',
           '<text x="10" y="38" fill="#555">filled: worst branch, hollow: mean over branches '
           '(points vs twin); green box: both targets hold</text>']
    # the target region: wall-time share at most 20%, every branch within 1 pt
    out.append(f'<rect x="{x(x_lo):.1f}" y="{y(y_hi):.1f}" '
               f'width="{x(WALL_TARGET) - x(x_lo):.1f}" height="{y(GAP_TARGET) - y(y_hi):.1f}" '
               'fill="#dff0d8" stroke="#2a8a3a"/>')
    span = x_hi - x_lo
    step = 1 if span <= 8 else 2 if span <= 16 else 5
    v = int(x_lo) - int(x_lo) % step
    while v <= x_hi:
        if v >= x_lo:
            out.append(f'<line x1="{x(v):.1f}" y1="{top}" x2="{x(v):.1f}" y2="{top + plot_h}" '
                       'stroke="#eee"/>')
            out.append(f'<text x="{x(v):.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                       f'fill="#555">{v}%</text>')
        v += step
    v = int(y_hi)
    while v >= y_lo:
        out.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + plot_w}" y2="{y(v):.1f}" '
                   'stroke="#eee"/>')
        tick = f"{v:+d}" if v else "0"
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" '
                   f'fill="#555">{tick}</text>')
        v -= 1
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
               'stroke="#333"/>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 10}" text-anchor="middle">'
               'wall time, share of the 16 twins\' (same timing window)</text>')
    out.append(f'<text x="16" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 16 {top + plot_h / 2:.1f})">difference to twin, pt</text>')
    colours = ["#1f77b4", "#d62728", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
    labels = {}
    for p in points:
        labels.setdefault(p["label"], colours[len(labels) % len(colours)])
    for p in points:
        c = labels[p["label"]]
        px = x(p["wall"])
        out.append(f'<line x1="{px:.1f}" y1="{y(p["mean"]):.1f}" x2="{px:.1f}" '
                   f'y2="{y(p["worst"]):.1f}" stroke="{c}"/>')
        out.append(f'<circle cx="{px:.1f}" cy="{y(p["worst"]):.1f}" r="5" fill="{c}"/>')
        out.append(f'<circle cx="{px:.1f}" cy="{y(p["mean"]):.1f}" r="5" fill="white" '
                   f'stroke="{c}" stroke-width="2"/>')
    for i, (label, c) in enumerate(labels.items()):
        ly = top + 10 + 20 * i
        out.append(f'<circle cx="{left + plot_w + 20}" cy="{ly}" r="5" fill="{c}"/>')
        out.append(f'<text x="{left + plot_w + 32}" y="{ly + 4}">{html.escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(args):
    svg = take_option(args, "--svg", "recipe_map.py")
    if not args:
        sys.exit("usage: recipe_map.py LABEL=DIR [LABEL=DIR ...] [--svg FILE]")
    points = []
    for a in args:
        label, sep, folder = a.partition("=")
        if not sep or not label or not folder:
            sys.exit(f"recipe_map.py: '{a}' is not LABEL=DIR")
        points.append(load(label, folder))
    print("| recipe | wall time | images | mean difference | worst (branch) | within 1 pt | "
          "largest vs twin |")
    print("|---|---|---|---|---|---|---|")
    for p in points:
        largest = "-" if p["largest"] is None else f"{p['largest']:+.2f}"
        print(f"| {p['label']} | {p['wall']:.1f}% | {p['images']:.1f}% | {p['mean']:+.2f} | "
              f"{p['worst']:+.2f} ({p['worst_name']}) | {p['within']} of {p['count']} | "
              f"{largest} |")
    inside = [p for p in points if p["wall"] <= WALL_TARGET and p["worst"] >= GAP_TARGET]
    print(f"\n{len(inside)} of {len(points)} runs meet both targets "
          f"(wall time <= {WALL_TARGET:.0f}%, every branch >= {GAP_TARGET:+.0f} pt)")
    if svg:
        try:
            write_atomically(svg, map_svg(points))
        except OSError as e:
            sys.exit(f"recipe_map.py: cannot write {svg}: {e.strerror}")


if __name__ == "__main__":
    main(sys.argv[1:])
