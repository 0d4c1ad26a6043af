"""What `Trainer.load` checks before it changes anything, and how it treats
hyperparameters the caller set differently from the checkpoint."""
import copy
import warnings

import numpy as np

from graphc.errors import GraphcError
from graphc.train.checkpoint import CheckpointError
from graphc.train.history import EarlyStopping, History


def checked_meta(path, meta, rng, optimizer, early_stopping):
    """Check every field `load` uses, on copies (optimizer, early stopping), and
    return the new generator and History.  Raises CheckpointError naming the
    field, before the caller has changed anything."""
    def bad(field, why):
        return CheckpointError(f"checkpoint {str(path)!r}: metadata field {field!r} {why}; nothing was loaded")
    for field in ("step", "epoch", "seed", "rng", "optimizer", "history", "early_stopping"):
        if field not in meta:
            raise bad(field, "is missing")
    for field in ("step", "epoch"):
        if isinstance(meta[field], bool) or not isinstance(meta[field], int) or meta[field] < 0:
            raise bad(field, f"must be an integer >= 0, found {meta[field]!r}")
    try:
        new_rng = np.random.Generator(type(rng.bit_generator)())
        new_rng.bit_generator.state = meta["rng"]
    except (TypeError, ValueError, KeyError) as e:
        raise bad("rng", f"is not a {type(rng.bit_generator).__name__} state ({e})") from None
    try:
        copy.deepcopy(optimizer).load_state_dict(meta["optimizer"])
        history = History(meta["history"])
        if meta["early_stopping"] is not None:
            trial = copy.deepcopy(early_stopping) if early_stopping is not None else EarlyStopping()
            trial.load_state_dict(meta["early_stopping"])
    except (GraphcError, TypeError, ValueError, KeyError, AttributeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r}: its metadata does not fit this trainer: "
                              f"{type(e).__name__}: {e}; nothing was loaded") from None
    return new_rng, history


def plain_number(value):
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def keep_chosen_hyper(path, optimizer, chosen):
    """After loading, restore the plain hyperparameters the caller chose, and say so."""
    changed = []
    for name, value in chosen.items():
        saved = optimizer.hyper[name]
        if plain_number(saved) and float(saved) != float(value):
            optimizer.hyper[name] = value
            changed.append(f"{name}={float(value):g} (the checkpoint trained with {float(saved):g})")
    if changed:
        warnings.warn(f"resuming from {str(path)!r} with this trainer's {', '.join(changed)}", stacklevel=3)
