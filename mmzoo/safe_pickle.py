"""A pickle reader that can only rebuild numpy arrays and plain containers.

Several released files are pickles of numpy arrays: PaddlePaddle ``.pdparams`` checkpoints,
Caffe2 model-zoo ``.pkl`` files, the MSR-VTT expert-feature pickles. Unpickling an arbitrary file
can run arbitrary code; :func:`restricted_load` resolves only the globals needed to rebuild numpy
arrays, dtypes, scalars and ``OrderedDict`` and refuses every other one, naming the file.
"""
from __future__ import annotations

import collections
import importlib
import io
import os
import pickle
import warnings
from typing import Any

from mmzoo.errors import MmzooError

__all__ = ["RestrictedUnpickler", "UnsafePickleError", "restricted_load"]

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),
}


class UnsafePickleError(MmzooError, pickle.UnpicklingError):
    """The pickle references a global outside the numpy allow-list."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays, dtypes, scalars, dicts, lists, strings and numbers,
    and refuses every other global (so no code from the file can run)."""

    def __init__(self, file, *, source: str = "<pickle>", **kwargs):
        super().__init__(file, encoding=kwargs.pop("encoding", "latin1"), **kwargs)
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            if module == "collections":
                return collections.OrderedDict
            if module == "_codecs":
                import codecs

                return codecs.encode
            # numpy 2 moved numpy.core to numpy._core; accept pickles written by either.
            candidates = (module, module.replace("numpy._core", "numpy.core"), module.replace("numpy.core", "numpy._core"))
            for modname in dict.fromkeys(candidates):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        return getattr(importlib.import_module(modname), name)
                except (ImportError, AttributeError):
                    continue
        raise UnsafePickleError(
            f"{self.source}: refusing to unpickle global '{module}.{name}' (only numpy arrays and "
            "plain Python containers are allowed)"
        )


def restricted_load(path: str | os.PathLike) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`; errors name the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        data = f.read()
    try:
        return RestrictedUnpickler(io.BytesIO(data), source=path).load()
    except UnsafePickleError:
        raise
    except Exception as e:  # truncated or not a pickle
        raise pickle.UnpicklingError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from e
