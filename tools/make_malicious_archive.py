"""Makes tests/data/malicious/hang_on_load.pt: a TorchScript module whose __setstate__ never returns.

torch.jit.load (and LibTorch's torch::serialize::InputArchive, which gaft used to read optimizer.pt and rng.pt
with) runs __setstate__ while loading: put in a checkpoint folder, this archive made `gaft train` resume hang.
The test Hostile.CheckpointArchivesAreNeverOpened puts it in place of a checkpoint's state files and expects a
clear refusal, well before a time limit.

    . scripts/env.sh && "$GAFT_VENV/bin/python" tools/make_malicious_archive.py   # writes tests/data/malicious/hang_on_load.pt
"""
import os

import torch


class Hang(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.x = 1

    @torch.jit.export
    def __getstate__(self):
        return (self.x, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[int, bool]):
        self.x = state[0]
        self.training = state[1]
        i = 0
        while i >= 0:  # never ends: the archive's code runs while it is loaded
            i = i + 1 - 1

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return t + self.x


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "..", "tests", "data", "malicious", "hang_on_load.pt")
    torch.jit.save(torch.jit.script(Hang()), out)
    print(out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
