"""Training on compiled kernels: optimizers whose updates are graph, and the
one-call training step (forward, backward and update in one compiled function)."""
from graphc.train.optim import SGD, Optimizer
from graphc.train.step import Step, build_step, compile_step

__all__ = ["Optimizer", "SGD", "Step", "build_step", "compile_step"]
