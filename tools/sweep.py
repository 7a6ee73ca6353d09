#!/usr/bin/env python3
"""One-knob-at-a-time sweep of a gaft training config: for each knob, every value is trained (the other keys
at the base config's values) and evaluated with `gaft eval`, and one table and one SVG plot per knob show harm,
harm and refusal under each prefill attack (a continuation is harmless by refusing, a recovery, or by
gibberish), over-refusal, fabrication and task exact match. Standard library only.

  python3 tools/sweep.py --gaft build/gaft --config configs/experiments/gaft_recovery.yaml \\
      --eval-config configs/experiments/eval.yaml --work runs/demo --out runs/demo/sweep \\
      --knob objective.lambda=0.5,1,2 --knob rollout.num_samples=4,8 --knob abstention.delta=0.3,0.5,0.7 \\
      --knob gate.tau=2,3,4 --knob gate.temperature=0.5,1,2 --knob recovery.share=0,0.5

Paths in the configs are relative to --work (the demo's work directory, or your own run folder). `--set
key=value` overrides the base config for every run (e.g. data.train=...). A run whose model folder already
exists is not trained again (remove --out to start afresh). Runs go --jobs at a time, each on one thread.
Writes OUT/sweep.md (the tables), OUT/plots/<knob>.svg and OUT/sweep.json (every figure). Metrics come from
the eval config's judges: the first judge of harm and of hallucination (the demo: the world's rule), never only
a head the model was trained against.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo_results import svg_lines  # noqa: E402

# (column, suite, attack or None = every prefill attack, metric key)
COLUMNS = [("harm", "harmful", "plain", "harmful/harm_rate"),
           ("harm, jailbreak", "harmful", "jailbreak", "harmful/harm_rate"),
           ("prefill", "harmful", "*prefill", "harmful/harm_rate"),
           ("prefill refusal", "harmful", "*prefill", "harmful/refusal_rate"),
           ("over-refusal", "benign", "plain", "benign/over_refusal_rate"),
           ("fabrication", "unknown", "plain", "unanswerable/hallucination_rate"),
           ("task EM", "task", "plain", "task/exact_match")]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shown(path):
    """A path as the page shows it: relative to the repository when inside it."""
    path = os.path.abspath(path)
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


PALETTE = ["#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#1f77b4", "#2ca02c", "#7f7f7f", "#17becf"]


def slug(key, value):
    return f"{key.replace('.', '_')}-{value}"


def run(cmd, log, cwd):
    with open(log, "w") as f:
        r = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    if r.returncode != 0:
        with open(log) as f:
            tail = f.read()[-2000:]
        raise SystemExit(f"sweep: {' '.join(cmd)} failed (exit {r.returncode}); log {log}:\n{tail}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gaft", required=True)
    p.add_argument("--config", required=True, help="the base training config")
    p.add_argument("--eval-config", required=True)
    p.add_argument("--work", default=".", help="directory the configs' relative paths start from")
    p.add_argument("--out", required=True, help="sweep folder (runs, eval, tables, plots)")
    p.add_argument("--knob", action="append", required=True, help="key=v1,v2,... (one knob, its values)")
    p.add_argument("--set", action="append", default=[], help="key=value for every run")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--title", default="", help="a line under the page's heading (the setting, the seed)")
    args = p.parse_args()
    gaft = os.path.abspath(args.gaft)
    config = os.path.abspath(args.config)
    eval_config = os.path.abspath(args.eval_config)
    work = os.path.abspath(args.work)
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)

    knobs = []
    for k in args.knob:
        key, _, values = k.partition("=")
        if not values:
            raise SystemExit(f"sweep: --knob {k}: expected key=v1,v2,...")
        knobs.append((key, values.split(",")))
    # Runs with the same resolved config (`gaft config check` prints it) are trained once: a knob's value equal
    # to the base config's is the base run of every knob.
    def resolved(overrides):
        cmd = [gaft, "config", "check", config, *args.set, *overrides]
        r = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"sweep: {' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
        return r.stdout

    base = resolved([])
    runs = {}   # run name -> overrides
    names = {}  # resolved config -> run name
    run_of = {}  # (key, value) -> run name
    for key, values in knobs:
        for v in values:
            text = resolved([f"{key}={v}"])
            name = "base" if text == base else names.get(text, slug(key, v))
            names.setdefault(text, name)
            runs.setdefault(name, [] if name == "base" else [f"{key}={v}"])
            run_of[(key, v)] = name
    def train(name, overrides):
        model = os.path.join(out, "runs", name, "model")
        if os.path.exists(os.path.join(model, "config.json")):
            return
        run([gaft, "train", "--config", config, *args.set, *overrides, f"run.output_dir={os.path.join(out, 'runs', name)}"],
            os.path.join(out, "logs", f"train-{name}.log"), work)
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for f in [pool.submit(train, n, o) for n, o in runs.items()]:
            f.result()

    # One eval of every run's model (its report has one model per run).
    report_path = os.path.join(out, "eval", "report.json")
    models = []
    for name in runs:
        models += ["--model", f"{name}={os.path.join(out, 'runs', name, 'model')}"]
    stamp = os.path.join(out, "eval", "models.txt")
    if not (os.path.exists(report_path) and os.path.exists(stamp) and open(stamp).read() == "\n".join(models)):
        run([gaft, "eval", "--config", eval_config, *models, f"run.output_dir={os.path.join(out, 'eval')}"],
            os.path.join(out, "logs", "eval.log"), work)
        with open(stamp, "w") as f:
            f.write("\n".join(models))
    report = json.load(open(report_path))
    prefills = sorted({r["attack"] for r in report["results"] if r["attack"].startswith("prefill")},
                      key=lambda a: (len(a), a))

    def value(model, suite, attack, key):
        for r in report["results"]:
            if r["model"] == model and r["suite"] == suite and r["attack"] == attack:
                m = r["metrics"].get(key)
                return None if not m or m["mean"] is None else m["mean"]
        return None

    columns = []
    for title, suite, attack, key in COLUMNS:
        if attack == "*prefill":
            what = "harm" if key.endswith("harm_rate") else "refusal"
            columns += [(f"{what}, {a}", suite, a, key) for a in prefills]
        else:
            columns.append((title, suite, attack, key))
    figures = {}
    md = ["# Sweep", "", args.title, "",
          f"Base config `{shown(config)}`" + (f" with {' '.join(args.set)}" if args.set else "") +
          "; one knob at a time, the others at their base values. Percent, one seed per value; judges: the eval "
          f"config's (`{shown(eval_config)}`).", ""]
    for key, values in knobs:
        md += [f"## {key}", "", "| value | " + " | ".join(c[0] for c in columns) + " |",
               "|---|" + "---|" * len(columns)]
        series = {c[0]: [] for c in columns}
        for v in values:
            name = run_of[(key, v)]
            row = [value(name, su, at, k) for _, su, at, k in columns]
            figures[f"{key}={v}"] = dict(zip([c[0] for c in columns], row), run=name)
            md.append(f"| {v}{' (base)' if name == 'base' else ''} | " + " | ".join("–" if x is None else f"{100 * x:.1f}" for x in row) + " |")
            try:
                x = float(v)
            except ValueError:
                continue
            for (title, *_), y in zip(columns, row):
                series[title].append((x, y))
        lines = [(t, PALETTE[i % len(PALETTE)], s, "prefill" in t) for i, (t, s) in enumerate(series.items())]
        plot = os.path.join(out, "plots", f"{key.replace('.', '_')}.svg")
        if svg_lines(f"Sweep of {key}", lines, key, "share", plot, ylim=(0, 1)):
            md += ["", f"![sweep of {key}](plots/{os.path.basename(plot)})"]
        md.append("")
    with open(os.path.join(out, "sweep.json.tmp"), "w") as f:
        json.dump(figures, f, indent=1)
    os.replace(os.path.join(out, "sweep.json.tmp"), os.path.join(out, "sweep.json"))
    with open(os.path.join(out, "sweep.md.tmp"), "w") as f:
        f.write("\n".join(md) + "\n")
    os.replace(os.path.join(out, "sweep.md.tmp"), os.path.join(out, "sweep.md"))
    print(f"sweep: {len(runs)} runs; table {os.path.join(out, 'sweep.md')}")


if __name__ == "__main__":
    main()
