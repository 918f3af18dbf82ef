"""Registered DataModule names for the CLI (`--data ave`, `--data kinetics`, ...)."""
from __future__ import annotations

from mmzoo.errors import UnknownDataError
from mmzoo.registry import did_you_mean, import_submodules

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


def all_datamodules() -> dict[str, type]:
    global _IMPORTED
    if not _IMPORTED:
        _IMPORTED = True
        import_submodules("mmzoo.data")
    return dict(sorted(_DATAMODULES.items()))


def get_datamodule(name: str) -> type:
    modules = all_datamodules()
    if name not in modules:
        raise UnknownDataError(f"Unknown data '{name}'.{did_you_mean(name, modules, n=3)} Known: {', '.join(modules)}.")
    return modules[name]
