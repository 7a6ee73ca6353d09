#!/usr/bin/env python3
"""Writes tests/data/tensorboard/reference.tfevents with TensorBoard's own event writer, as the reference that
gaft's reader (and so its record framing, CRC-32C and Event encoding) is tested against.

Three summary events of scalars, written by tensorboard.summary.writer.event_file_writer.EventFileWriter (the
file starts with its "brain.Event:2" record); the values and steps are those tests/util/tensorboard_test.cpp
expects.

Run: /root/.cache/gaft/torch-2.11.0/bin/python tools/make_tensorboard_fixture.py   (needs tensorboard, see
tools/requirements.txt; C++ tests never run Python).
"""
import glob
import os
import shutil
import tempfile

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "tensorboard", "reference.tfevents")

EVENTS = [(1, {"loss": 2.5, "lr": 0.001}), (2, {"loss": 1.25, "lr": 0.002, "eval/harm": 0.125}), (10, {"loss": -3.0})]


def main():
    tmp = tempfile.mkdtemp()
    try:
        writer = EventFileWriter(tmp)
        for step, values in EVENTS:
            summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in values.items()])
            writer.add_event(event_pb2.Event(wall_time=1700000000.0 + step, step=step, summary=summary))
        writer.close()
        (path,) = glob.glob(os.path.join(tmp, "events.out.tfevents.*"))
        os.makedirs(os.path.dirname(OUT), exist_ok=True)
        shutil.copyfile(path, OUT)
        print(OUT, os.path.getsize(OUT), "bytes")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
