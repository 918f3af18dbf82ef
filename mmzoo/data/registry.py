"""Registered DataModule names for the CLI (`--data ave`, `--data kinetics`, ...)."""
from __future__ import annotations

import difflib
import importlib
import pkgutil

_DATAMODULES: dict[str, type] = {}
_IMPORTED = False


def register_datamodule(name: str):
    """Class decorator: make a LightningDataModule available as `--data <name>`."""

    def decorator(cls: type) -> type:
        if name in _DATAMODULES and _DATAMODULES[name] is not cls:
            raise ValueError(f"DataModule name '{name}' is registered twice.")
        _DATAMODULES[name] = cls
        cls.datamodule_name = name
        return cls

    return decorator


def _import_data_modules() -> None:
    global _IMPORTED
    if _IMPORTED:
        return
    _IMPORTED = True
    import mmzoo.data as pkg

    for info in pkgutil.walk_packages(pkg.__path__, prefix="mmzoo.data."):
        importlib.import_module(info.name)


def all_datamodules() -> dict[str, type]:
    _import_data_modules()
    return dict(sorted(_DATAMODULES.items()))


def get_datamodule(name: str) -> type:
    modules = all_datamodules()
    if name not in modules:
        close = difflib.get_close_matches(name, list(modules), n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise KeyError(f"Unknown data '{name}'.{hint} Known: {', '.join(modules)}.")
    return modules[name]
