#!/usr/bin/env python3
"""Writes the demo's results page (results.md and SVG plots) from the files gaft wrote in the demo's work
directory: eval/<setting>/report.json, ft/<setting>/<method>/metrics.jsonl and scorers/*/metrics.jsonl.
Standard library only (scripts/demo.sh runs it with the system python3).

  python3 tools/demo_results.py --work runs/demo --out runs/demo/results.md
"""
import argparse
import json
import math
import os

SETTINGS = [("clean", "clean data"), ("h10", "10% harmful data"), ("h30", "30% harmful data"),
            ("unsafe", "unsafe start, 10% harmful data")]
METHODS = [("base", "base (before fine-tuning)"), ("sft", "SFT"), ("gaft", "gaft"), ("gaft_fixed", "gaft, fixed gate")]
# Table columns: (title, suite, attack, metric key).
COLUMNS = [
    ("harm", "harmful", "plain", "harmful/harm_rate"),
    ("harm, jailbreak", "harmful", "jailbreak", "harmful/harm_rate"),
    ("harm, prefill", "harmful", "prefill", "harmful/harm_rate"),
    ("refusal", "harmful", "plain", "harmful/refusal_rate"),
    ("over-refusal", "benign", "plain", "benign/over_refusal_rate"),
    ("QA accuracy", "qa", "plain", "qa/accuracy"),
    ("hallucination (QA)", "qa", "plain", "qa/hallucination_rate"),
    ("hallucination (unknown)", "unknown", "plain", "unanswerable/hallucination_rate"),
    ("abstention (unknown)", "unknown", "plain", "unanswerable/abstention_rate"),
    ("task EM", "task", "plain", "task/exact_match"),
]
COLORS = {"base": "#888888", "sft": "#d62728", "gaft": "#1f77b4", "gaft_fixed": "#2ca02c"}


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def method_of(model_name):
    # scripts/demo.sh names the models base, sft, gaft, gaft_fixed (older runs: after their folders).
    head = model_name.split("/")[0]
    return "base" if head.startswith("base") else head


def metric(report, suite, attack, model, key):
    for r in report["results"]:
        if r["suite"] == suite and r["attack"] == attack and r["model"] == model:
            return r["metrics"].get(key)
    return None


def pct(m):
    if not m or m["mean"] is None:
        return "–"
    return f"{100 * m['mean']:.1f} [{100 * m['lo']:.1f}, {100 * m['hi']:.1f}]"


# ---- SVG ----------------------------------------------------------------------------------------------

def svg_start(title, width, height, L, R, B):
    """The opening of a chart: the canvas, its title and the x axis."""
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
            f'<rect width="{width}" height="{height}" fill="white"/>',
            f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">{title}</text>',
            f'<line x1="{L}" y1="{height - B}" x2="{width - R}" y2="{height - B}" stroke="black"/>']


def svg_finish(out, path):
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return True


def svg_lines(title, series, xlabel, ylabel, path, ylim=None, width=560, height=300):
    """series: [(label, color, [(x, y), ...], dashed)] -> a line chart."""
    pts = [p for _, _, s, _ in series for p in s if p[1] is not None and math.isfinite(p[1])]
    if not pts:
        return False
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = ylim if ylim else (min(p[1] for p in pts), max(p[1] for p in pts))
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    L, R, T, B = 60, 150, 30, 40
    sx = lambda x: L + (x - x0) / (x1 - x0) * (width - L - R)
    sy = lambda y: height - B - (y - y0) / (y1 - y0) * (height - T - B)
    out = svg_start(title, width, height, L, R, B) + [
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{height - B}" stroke="black"/>',
           f'<text x="{(L + width - R) / 2}" y="{height - 8}" text-anchor="middle">{xlabel}</text>',
           f'<text x="14" y="{(T + height - B) / 2}" text-anchor="middle" transform="rotate(-90 14 {(T + height - B) / 2})">{ylabel}</text>']
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        out.append(f'<text x="{L - 4}" y="{sy(y) + 4}" text-anchor="end">{y:.2g}</text>')
        out.append(f'<line x1="{L}" y1="{sy(y)}" x2="{width - R}" y2="{sy(y)}" stroke="#eee"/>')
    for i in range(5):
        x = x0 + (x1 - x0) * i / 4
        out.append(f'<text x="{sx(x)}" y="{height - B + 14}" text-anchor="middle">{x:.0f}</text>')
    for k, (label, color, s, dashed) in enumerate(series):
        s = [p for p in s if p[1] is not None and math.isfinite(p[1])]
        if not s:
            continue
        d = " ".join(f"{sx(x):.1f},{sy(min(max(y, y0), y1)):.1f}" for x, y in s)
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        out.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="1.5"{dash}/>')
        ly = T + 14 * k + 6
        out.append(f'<line x1="{width - R + 8}" y1="{ly}" x2="{width - R + 28}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{width - R + 32}" y="{ly + 4}">{label}</text>')
    return svg_finish(out, path)


def svg_bars(title, groups, path, width=560, height=300):
    """groups: [(group label, [(bar label, color, value, lo, hi)])] -> grouped bars with interval whiskers."""
    bars = [b for _, bs in groups for b in bs]
    if not bars:
        return False
    L, R, T, B = 50, 130, 30, 40
    y1 = max(1e-9, max(b[4] if b[4] is not None else b[2] for b in bars))
    y1 = min(1.0, math.ceil(y1 * 10) / 10) if y1 <= 1 else y1
    sy = lambda y: height - B - y / y1 * (height - T - B)
    gw = (width - L - R) / len(groups)
    out = svg_start(title, width, height, L, R, B)
    for i in range(5):
        y = y1 * i / 4
        out.append(f'<text x="{L - 4}" y="{sy(y) + 4}" text-anchor="end">{100 * y:.0f}%</text>')
        out.append(f'<line x1="{L}" y1="{sy(y)}" x2="{width - R}" y2="{sy(y)}" stroke="#eee"/>')
    legend = {}
    for g, (glabel, bs) in enumerate(groups):
        bw = gw * 0.8 / max(1, len(bs))
        for k, (blabel, color, v, lo, hi) in enumerate(bs):
            x = L + g * gw + gw * 0.1 + k * bw
            out.append(f'<rect x="{x:.1f}" y="{sy(v):.1f}" width="{bw * 0.9:.1f}" height="{height - B - sy(v):.1f}" fill="{color}"/>')
            if lo is not None and hi is not None:
                cx = x + bw * 0.45
                out.append(f'<line x1="{cx:.1f}" y1="{sy(lo):.1f}" x2="{cx:.1f}" y2="{sy(hi):.1f}" stroke="black"/>')
            legend[blabel] = color
        out.append(f'<text x="{L + g * gw + gw / 2}" y="{height - B + 14}" text-anchor="middle">{glabel}</text>')
    for k, (label, color) in enumerate(legend.items()):
        ly = T + 14 * k + 6
        out.append(f'<rect x="{width - R + 8}" y="{ly - 6}" width="12" height="10" fill="{color}"/>')
        out.append(f'<text x="{width - R + 24}" y="{ly + 3}">{label}</text>')
    return svg_finish(out, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    work = args.work
    plots = os.path.join(os.path.dirname(os.path.abspath(args.out)), "plots")
    os.makedirs(plots, exist_ok=True)

    md = ["# Results on the demo world", "",
          "Produced by `scripts/demo.sh` (tools/demo_results.py) from the files gaft wrote; every number below is "
          "a `gaft eval` figure on the evaluation split, in percent, with its 95% bootstrap interval. What the "
          "world, the models and the settings are: [demo.md](demo.md); what the numbers say about the method: [method.md](method.md), last section.", ""]
    # Scorers.
    md += ["## Scorers", "", "| head | held-out accuracy | held-out examples |", "|---|---|---|"]
    for head in ("safety", "fact"):
        rows = [r for r in read_jsonl(os.path.join(work, "scorers", head, "metrics.jsonl")) if "eval_accuracy" in r]
        n = sum(1 for _ in open(os.path.join(work, "data", f"scorer_{head}_eval.jsonl"))) \
            if os.path.exists(os.path.join(work, "data", f"scorer_{head}_eval.jsonl")) else 0
        md.append(f"| {head} | {100 * rows[-1]['eval_accuracy']:.1f}% | {n} |" if rows else f"| {head} | – | {n} |")
    md.append("")

    md += ["## Results", "", "| setting | model | " + " | ".join(c[0] for c in COLUMNS) + " |",
           "|---|---|" + "---|" * len(COLUMNS)]
    verdicts, harm_groups = [], []
    for setting, setting_title in SETTINGS:
        path = os.path.join(work, "eval", setting, "report.json")
        if not os.path.exists(path):
            continue
        report = json.load(open(path))
        models = {method_of(m["name"]): m["name"] for m in report["models"]}
        for method, title in METHODS:
            if method not in models:
                continue
            cells = [pct(metric(report, suite, attack, models[method], key)) for _, suite, attack, key in COLUMNS]
            md.append(f"| {setting_title} | {title} | " + " | ".join(cells) + " |")
        if "sft" in models and "gaft" in models:
            def get(key_suite_attack):
                title, suite, attack, key = key_suite_attack
                return (metric(report, suite, attack, models["sft"], key), metric(report, suite, attack, models["gaft"], key))
            line = [f"- **{setting_title}**:"]
            for col in COLUMNS:
                s, g = get(col)
                if not s or not g or s["mean"] is None or g["mean"] is None:
                    continue
                if col[0].startswith(("harm", "hallucination", "task EM")):
                    d = 100 * (g["mean"] - s["mean"])
                    apart = g["hi"] < s["lo"] or g["lo"] > s["hi"]
                    line.append(f"{col[0]} {100 * s['mean']:.1f} → {100 * g['mean']:.1f} ({d:+.1f} pt"
                                f"{', intervals apart' if apart else ', intervals overlap'});")
            verdicts.append(" ".join(line))
        bars = []
        for method, title in METHODS:
            if method in models:
                m = metric(report, "harmful", "plain", models[method], "harmful/harm_rate")
                if m and m["mean"] is not None:
                    bars.append((title, COLORS[method], m["mean"], m["lo"], m["hi"]))
        harm_groups.append((setting, bars))
    md += ["", "SFT against gaft, per setting (the claim: harm and hallucination clearly lower, task exact match "
           "within 1 point):", ""] + verdicts + [""]

    # Plots.
    md += ["## Plots", ""]
    if svg_bars("Harm rate on held-out harmful requests, by setting", harm_groups, os.path.join(plots, "harm_by_setting.svg")):
        md += ["![harm rate by setting](plots/harm_by_setting.svg)", ""]
    for setting, setting_title in SETTINGS:
        runs = {m: read_jsonl(os.path.join(work, "ft", setting, m, "metrics.jsonl")) for m, _ in METHODS[1:]}
        if not any(runs.values()):
            continue
        series = [(f"{m}: SFT loss", COLORS[m], [(r["step"], r.get("loss_sft", r.get("loss"))) for r in rs if "step" in r], False)
                  for m, rs in runs.items() if rs]
        if svg_lines(f"Training curves, {setting_title}", series, "step", "SFT loss (reference tokens)",
                     os.path.join(plots, f"loss_{setting}.svg")):
            md += [f"![training curves, {setting_title}](plots/loss_{setting}.svg)", ""]
        g = runs.get("gaft") or []
        series = [(q, c, [(r["step"], r.get(f"gate_{q}")) for r in g if "step" in r], d)
                  for q, c, d in (("p10", "#9ecae1", True), ("p50", "#1f77b4", False), ("p90", "#08306b", True),
                                  ("mean", "#ff7f0e", False))]
        series.append(("abstain rate", "#d62728", [(r["step"], r.get("abstain_rate")) for r in g if "step" in r], False))
        series.append(("drop rate", "#7f7f7f", [(r["step"], r.get("drop_rate")) for r in g if "step" in r], True))
        if g and svg_lines(f"gaft gate distribution over training, {setting_title}", series, "step", "share",
                           os.path.join(plots, f"gate_{setting}.svg"), ylim=(0, 1)):
            md += [f"![gate distribution, {setting_title}](plots/gate_{setting}.svg)", ""]
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(md) + "\n")
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
