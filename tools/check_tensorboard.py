#!/usr/bin/env python3
"""Reads a gaft run's TensorBoard event files with TensorBoard's own loader and checks that every scalar of
metrics.jsonl is there, at its step, with its value (float32), and nothing else.

    /root/.cache/gaft/torch-2.11.0/bin/python tools/check_tensorboard.py RUN_DIR

RUN_DIR is a training run's run.output_dir (metrics.jsonl and tensorboard/). Exit 0 and a summary line when
everything matches; 1 and the differences otherwise. Needs tensorboard (tools/requirements.txt).
"""
import json
import math
import os
import struct
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def flatten(record, prefix=""):
    for key, value in record.items():
        tag = f"{prefix}/{key}" if prefix else key
        if not prefix and key == "step":
            continue
        if isinstance(value, dict):
            yield from flatten(value, tag)
        elif isinstance(value, bool):
            yield tag, 1.0 if value else 0.0
        elif isinstance(value, (int, float)):
            yield tag, float(value)


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def main():
    run = sys.argv[1]
    expected = {}  # tag -> {step: value}
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            for tag, value in flatten(record):
                expected.setdefault(tag, {})[record["step"]] = value
    acc = EventAccumulator(os.path.join(run, "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    got_tags = set(acc.Tags()["scalars"])
    problems = []
    if got_tags != set(expected):
        problems.append(f"tags differ: only in metrics.jsonl {sorted(set(expected) - got_tags)}, "
                        f"only in the event files {sorted(got_tags - set(expected))}")
    n = 0
    for tag in sorted(got_tags & set(expected)):
        got = {e.step: e.value for e in acc.Scalars(tag)}
        for step, value in expected[tag].items():
            n += 1
            if step not in got:
                problems.append(f"{tag} step {step}: missing")
            elif not (got[step] == f32(value) or (math.isnan(got[step]) and math.isnan(value))):
                problems.append(f"{tag} step {step}: {got[step]} != {f32(value)}")
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"ok: TensorBoard {__import__('tensorboard').__version__} read {len(got_tags)} scalar tags, "
          f"{n} values, all equal to metrics.jsonl (float32)")


if __name__ == "__main__":
    main()
