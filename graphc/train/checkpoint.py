"""Crash-safe checkpoint files: named arrays plus JSON metadata in one .npz.

The training loop decides what goes in; this module only guarantees that a
checkpoint on disk is always a whole one, and that loading one that does not
fit the model fails with a message saying why.

Format: an uncompressed .npz (a zip of ``<name>.npy`` members, readable with
``np.load(path, allow_pickle=False)``).  The metadata is the member
``__graphc_meta__``: UTF-8 JSON bytes as a uint8 array, so nothing ever needs
pickle -- loading a checkpoint cannot run code.
"""
import contextlib
import errno
import glob
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from graphc.errors import GraphcError

FORMAT_VERSION = 1
META_KEY = "__graphc_meta__"


class CheckpointError(GraphcError):
    """A checkpoint could not be written, read, or does not fit the model."""


def save(path, arrays, meta):
    """Write `arrays` ({name: array}) and `meta` (JSON-able dict) to `path`
    atomically: a crash at any point leaves either the old file or the new one.
    `meta` gets "format_version" added.  Returns the Path written."""
    path = Path(path)
    arrays = _check_arrays(arrays)
    header = _encode_meta(meta)  # before touching the disk: a bad meta writes nothing
    if path.is_dir():
        raise CheckpointError(f"cannot write checkpoint {str(path)!r}: it is a directory; name a file")
    if path.parent.exists() and not path.parent.is_dir():
        raise CheckpointError(f"cannot write checkpoint {str(path)!r}: {str(path.parent)!r} is a file, not a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(path)
        _write_atomic(path, {**arrays, META_KEY: header})
        _fsync_dir(path.parent)  # make the rename itself durable
    except OSError as e:  # a full disk (ENOSPC), a size limit (EFBIG), no permission ...
        code = errno.errorcode.get(e.errno, "")
        raise CheckpointError(f"cannot write checkpoint {str(path)!r}: {e.strerror or e}"
                              f"{f' ({code})' if code else ''}; the previous checkpoint there, if any, "
                              "is unchanged") from None
    return path


def _write_atomic(path, arrays):
    # Same directory, so os.replace is a rename within one filesystem (atomic).
    # The temp name carries our pid: a save killed midway leaves a file that the
    # next save or load recognises as stale (its pid is gone) and removes.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_temp_prefix(path)}{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            _match_mode(f, path)
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _temp_prefix(path):
    return f".{path.name}."


def remove_stale_temp_files(path):
    """Delete temp files that saves of `path` left when their process was killed:
    `.<name>.<pid>.<random>.tmp` whose pid is no longer running.  A save still in
    progress in a live process keeps its file.  Returns the paths removed."""
    path = Path(path)
    prefix = _temp_prefix(path)
    removed = []
    for entry in path.parent.glob(glob.escape(prefix) + "*.tmp"):
        pid = entry.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
    return removed


def _process_alive(pid):
    if pid == os.getpid() or os.name == "nt":  # on Windows os.kill would terminate it: keep the file
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by someone else
        return True
    return True


def load(path, expect_graph_hash=None, expect_arrays=None):
    """Read a checkpoint; returns (arrays, meta).

    `expect_graph_hash`: must equal meta["graph_hash"].  `expect_arrays`:
    {name: (shape, dtype)} that must be present with that shape and dtype
    (None for either skips that check); other arrays in the file are fine."""
    path = Path(path)
    with contextlib.suppress(OSError):  # a read-only directory keeps its leftovers; loading still works
        remove_stale_temp_files(path)
    if not path.is_file():
        what = "is a directory, not a checkpoint file" if path.is_dir() else \
            "is not a file" if path.exists() else "not found"
        raise CheckpointError(f"checkpoint {str(path)!r} {what}")
    arrays, header = _read_npz(path)
    meta = _decode_meta(path, header)
    if expect_graph_hash is not None:
        _check_graph_hash(path, meta, expect_graph_hash)
    if expect_arrays is not None:
        _check_expected(path, arrays, expect_arrays)
    return arrays, meta


def _check_arrays(arrays):
    if not hasattr(arrays, "items"):
        raise CheckpointError(f"arrays must be a dict of name -> array, got {type(arrays).__name__}")
    out = {}
    for name, value in arrays.items():
        # "/" and "." are fine in zip member names; NUL ends one, "\\" is a path
        # separator on Windows, and the meta member's name is taken.
        if not isinstance(name, str) or not name or "\0" in name or "\\" in name or name == META_KEY:
            raise CheckpointError(f"bad array name {name!r}: need a non-empty string without "
                                  f"NUL or backslash, other than {META_KEY!r}")
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as e:  # e.g. a ragged list
            raise CheckpointError(f"array {name!r} is not an array: {e}") from None
        if arr.dtype.hasobject:
            raise CheckpointError(f"array {name!r} has dtype {arr.dtype}, which holds Python objects "
                                  "and would need pickle; convert it to a numeric array")
        out[name] = arr
    return out


def _encode_meta(meta):
    if not isinstance(meta, dict):
        raise CheckpointError(f"meta must be a dict, got {type(meta).__name__}")
    meta = {**meta, "format_version": FORMAT_VERSION}
    try:
        text = json.dumps(meta, default=_json_scalar)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"meta is not JSON-serializable: {e}") from None
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _json_scalar(obj):
    # numpy scalars (a step counter from an array, a float32 loss) are common in meta
    if isinstance(obj, np.generic) and obj.dtype.kind in "biuf":
        return obj.item()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _write_npz(f, arrays):
    # What np.savez does, minus its keyword interface: np.savez(f, **arrays)
    # would choke on an array named "file" or take "allow_pickle" as a flag.
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            with zf.open(name + ".npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


def _match_mode(f, path):
    # mkstemp makes the file 0600; give it the mode of the file it replaces, or
    # the mode open() would give a new file, so a shared checkpoint stays
    # readable.  (No fchmod on Windows, where the mode means little.)
    mode = path.stat().st_mode & 0o7777 if path.exists() else _new_file_mode()
    if mode is not None and hasattr(os, "fchmod"):
        os.fchmod(f.fileno(), mode)


def _new_file_mode():
    # Linux reports the umask here; os.umask() can only read it by changing it,
    # which would race with other threads creating files.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None  # unknown: keep mkstemp's private 0600


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open a directory; its rename is as durable as it gets
        return
    try:
        os.fsync(fd)
    except OSError as e:  # some filesystems do not support fsync on a directory
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _read_npz(path):
    """All arrays, read eagerly so a damaged member fails here (zip checks each
    member's CRC as it is read), not later in the caller."""
    try:
        with open(path, "rb") as fh:
            # np.load would try other formats on a non-zip file and complain about pickle
            if fh.read(4) != b"PK\x03\x04":
                raise CheckpointError(f"checkpoint {str(path)!r} is not an .npz file (no zip header)")
            fh.seek(0)
            with np.load(fh, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
    except CheckpointError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged: truncated, corrupted, or not a checkpoint file "
                              f"({type(e).__name__}: {e})") from None
    if META_KEY not in arrays:
        raise CheckpointError(f"checkpoint {str(path)!r} is an .npz without {META_KEY!r}: "
                              "not written by graphc.train.checkpoint.save")
    return arrays, arrays.pop(META_KEY)


def _decode_meta(path, header):
    try:
        if header.dtype != np.uint8 or header.ndim != 1:
            raise ValueError(f"meta is {header.dtype} of shape {header.shape}, expected 1-D uint8")
        meta = json.loads(header.tobytes().decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("meta is not a JSON object")
    except ValueError as e:
        raise CheckpointError(f"checkpoint {str(path)!r} has unreadable metadata: {e}") from None
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"checkpoint {str(path)!r} has no valid format_version (found {version!r})")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} has format version {version}, but this graphc "
                              f"reads up to version {FORMAT_VERSION}: it was written by a newer graphc; "
                              "upgrade graphc to load it")
    return meta


def _check_graph_hash(path, meta, expected):
    found = meta.get("graph_hash")
    if found is None:
        raise CheckpointError(f"checkpoint {str(path)!r} records no graph_hash, so it cannot be "
                              f"checked against the model graph (expected {expected!r})")
    if found != expected:
        raise CheckpointError(f"checkpoint {str(path)!r} is from a different model graph: its graph "
                              f"hash is {found!r}, this model's is {expected!r}. The parameters and "
                              "optimizer state would not fit this model; load a checkpoint saved "
                              "from the same graph, or start training from scratch")


def _check_expected(path, arrays, expect_arrays):
    problems = []
    missing = [name for name in expect_arrays if name not in arrays]
    if missing:
        problems.append(f"missing arrays: {', '.join(map(repr, missing))}")
    for name, (shape, dtype) in expect_arrays.items():
        if name not in arrays:
            continue
        arr = arrays[name]
        want_shape = None if shape is None else tuple(shape)
        want_dtype = None if dtype is None else np.dtype(dtype)
        if (want_shape is not None and arr.shape != want_shape) or \
                (want_dtype is not None and arr.dtype != want_dtype):
            problems.append(f"array {name!r}: expected shape {want_shape} dtype {want_dtype}, "
                            f"found shape {arr.shape} dtype {arr.dtype}")
    if problems:
        raise CheckpointError(f"checkpoint {str(path)!r} does not fit the model:\n  " + "\n  ".join(problems))
