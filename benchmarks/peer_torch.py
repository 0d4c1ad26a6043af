"""PyTorch eager (CPU): autograd for the backward pass, an in-place SGD update
under no_grad.  Needs the `bench` extra (torch==2.13.0; install the CPU wheel).

    .venv/bin/python benchmarks/peer_torch.py --workload spiral

It prints one JSON object (see peerlib.py); if torch is not installed, an
object with "error".  Threads: torch's default (intra-op threads = cores).
"""
import sys

import peerlib


class TorchStep:
    def __init__(self, spec, X, y, params):
        import torch
        import torch.nn.functional as F
        self.torch, self.F = torch, F
        self.X = torch.from_numpy(X)
        self.y = torch.from_numpy(y)
        self.depth, self.lr = spec.depth, spec.lr
        self.W = [torch.tensor(params[f"W{i}"], requires_grad=True) for i in range(1, spec.depth + 1)]
        self.b = [torch.tensor(params[f"b{i}"], requires_grad=True) for i in range(1, spec.depth + 1)]
        self.all = [p for pair in zip(self.W, self.b) for p in pair]
        self.version = torch.__version__
        self.info = {"intra_op_threads": torch.get_num_threads(),
                     "inter_op_threads": torch.get_num_interop_threads(),
                     "parallel_info": torch.__config__.parallel_info().splitlines()[:6]}

    def step(self):
        torch, W, b = self.torch, self.W, self.b
        h = self.X
        for i in range(self.depth - 1):
            h = torch.relu(h @ W[i] + b[i])
        loss = self.F.cross_entropy(h @ W[-1] + b[-1], self.y)
        loss.backward()
        with torch.no_grad():
            for p in self.all:
                p.add_(p.grad, alpha=-self.lr)
                p.grad = None
        return loss.detach()

    def loss_value(self, h):
        return float(h)

    def params(self):
        out = {}
        for i in range(self.depth):
            out[f"W{i + 1}"] = self.W[i].detach().numpy()
            out[f"b{i + 1}"] = self.b[i].detach().numpy()
        return out


def make(spec, X, y, params):
    return TorchStep(spec, X, y, params)


if __name__ == "__main__":
    sys.exit(peerlib.main(make, "torch"))
