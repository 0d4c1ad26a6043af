"""Training on compiled kernels.

Layers and a loss make a `Model`; a `Trainer` compiles its training step
(forward, backward, the optimizer's update and batch norm's running
statistics in one numba function) and runs `fit`: shuffled minibatches,
validation, early stopping, schedules, progress, checkpoints and plots.

    from graphc.train import Model, Dense, Trainer, Adam
    model = Model([Dense(100, "relu"), Dense(3)], input_shape=(2,), loss="cross_entropy")
    trainer = Trainer(model, Adam(lr=1e-2), seed=0)
    history = trainer.fit(X, y, epochs=200, batch_size=64, validation_split=0.2)
"""
from graphc.train import checkpoint, init, losses, schedules  # noqa: F401  (namespaces: train.init.HeNormal() ...)
from graphc.train.checkpoint import CheckpointError
from graphc.train.fit import Trainer, fit
from graphc.train.history import EarlyStopping, History, compare, decision_boundary
from graphc.train.layers import (ELU, GELU, Activation, BatchNorm, Dense, Dropout, Layer,
                                 LayerNorm, LeakyReLU, Maxout, ReLU, Residual, Sequential,
                                 Sigmoid, Softplus, Swish, Tanh)
from graphc.train.model import Model
from graphc.train.optim import SGD, Adagrad, Adam, Momentum, Nesterov, Optimizer, RMSProp
from graphc.train.schedules import (ExponentialDecay, InverseSqrtDecay, ReduceLROnPlateau,
                                    Schedule, StepDecay)
from graphc.train.step import Step, build_step, compile_step

__all__ = [
    "Model", "Trainer", "fit", "History", "EarlyStopping", "compare", "decision_boundary",
    "Layer", "Dense", "Activation", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "GELU", "Swish",
    "Softplus", "Maxout", "Dropout", "LayerNorm", "BatchNorm", "Residual", "Sequential",
    "Optimizer", "SGD", "Momentum", "Nesterov", "Adagrad", "RMSProp", "Adam",
    "Schedule", "ExponentialDecay", "InverseSqrtDecay", "StepDecay", "ReduceLROnPlateau",
    "Step", "build_step", "compile_step", "init", "losses", "schedules", "checkpoint", "CheckpointError",
]
