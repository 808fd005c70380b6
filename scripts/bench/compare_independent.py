"""Compares a multi-branch training run with its branches trained independently.

Reads OUT/summary.json (written by `adascale train` for a [supernet] config) and
OUT/independent/summary.json (written by `adascale train --independent`) and prints a markdown
table: per-branch test accuracy side by side, and the total cost of both ways in wall time and
training images processed (forward + backward passes).

usage: compare_independent.py OUT [--svg FILE]
With --svg, also draws the per-branch differences (one bar per branch, largest first, the 1-pt
target as a dashed line) as a standalone SVG, written to a temporary file and renamed.
"""
import html
import json
import os
import sys
import tempfile


def difference_svg(rows, title):
    """rows: (name, macs, multi-branch accuracy, independent accuracy), in display order."""
    row_h, top, left, plot_w, right = 22, 56, 250, 400, 190
    diffs = [100 * (a - t) for _, _, a, t in rows]
    lo = min(-1.5, min(diffs) - 0.5)
    hi = max(0.5, max(diffs) + 0.5)
    x = lambda v: left + (v - lo) / (hi - lo) * plot_w
    width, height = left + plot_w + right, top + row_h * len(rows) + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="20" font-size="14" font-weight="bold">{html.escape(title)}</text>',
           '<text x="10" y="38" fill="#555">multi-branch minus independently trained twin, '
           'test accuracy in points; green: within the 1-pt target</text>']
    step = 1 if hi - lo <= 12 else 2
    v = int(lo) - int(lo) % step
    while v <= hi:
        if v >= lo:
            out.append(f'<line x1="{x(v):.1f}" y1="{top - 6}" x2="{x(v):.1f}" '
                       f'y2="{top + row_h * len(rows)}" stroke="#eee"/>')
            out.append(f'<text x="{x(v):.1f}" y="{top + row_h * len(rows) + 16}" '
                       f'text-anchor="middle" fill="#555">{v:+d}</text>')
        v += step
    for xv, style in ((0, 'stroke="#333"'), (-1, 'stroke="#c00" stroke-dasharray="4 3"')):
        out.append(f'<line x1="{x(xv):.1f}" y1="{top - 6}" x2="{x(xv):.1f}" '
                   f'y2="{top + row_h * len(rows)}" {style}/>')
    for i, ((name, macs, acc, twin), d) in enumerate(zip(rows, diffs)):
        y = top + i * row_h
        colour = "#2a8a3a" if d >= -1.0 else "#c0392b"
        x0, x1 = sorted((x(0), x(d)))
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">'
                   f'{html.escape(name)} ({macs / 1e6:.2f} M)</text>')
        out.append(f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 1):.1f}" '
                   f'height="{row_h - 8}" fill="{colour}"/>')
        out.append(f'<text x="{left + plot_w + 8}" y="{y + 15}">{d:+.2f} '
                   f'({100 * acc:.2f} vs {100 * twin:.2f}%)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_atomically(path, text):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)  # mkstemp makes the file private; give it the usual mode
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def take_option(args, option, prog):
    """Removes `option VALUE` from args and returns VALUE (None when absent)."""
    if option not in args:
        return None
    i = args.index(option)
    if i + 1 >= len(args):
        sys.exit(f"{prog}: {option} needs a file name")
    value = args[i + 1]
    del args[i:i + 2]
    return value


def main(out, svg=None):
    with open(f"{out}/summary.json") as f:
        sup = json.load(f)
    with open(f"{out}/independent/summary.json") as f:
        ind = json.load(f)
    twins = {b["name"]: b for b in ind["branches"]}
    print("| branch | M MACs | params | multi-branch acc | independent acc | difference |")
    print("|---|---|---|---|---|---|")
    worst = None
    rows = []
    for b in sup["branches"]:
        t = twins.get(b["name"])
        if t is None:
            continue
        rows.append((b["name"], b["macs"], b["accuracy"], t["accuracy"]))
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
    if svg:
        rows.sort(key=lambda r: -r[1])
        per_twin = ind_images // max(1, len(twins) * ind["epochs"])
        title = (f"{len(rows)} branches trained once vs each on its own: {per_twin:,} images x "
                 f"{ind['epochs']} epochs, {sup['train_images'] / ind_images:.1%} of the images")
        try:
            write_atomically(svg, difference_svg(rows, title))
        except OSError as e:
            sys.exit(f"compare_independent.py: cannot write {svg}: {e.strerror}")


if __name__ == "__main__":
    args = sys.argv[1:]
    svg = take_option(args, "--svg", "compare_independent.py")
    if len(args) > 1:
        sys.exit(f"compare_independent.py: unexpected argument '{args[1]}'")
    main(args[0] if args else "runs/supernet_vs_independent", svg)
