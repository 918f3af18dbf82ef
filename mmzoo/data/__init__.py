"""Datasets as their authors distribute them: decoding, samplers, transforms, DataModules."""
from mmzoo.data.registry import all_datamodules, get_datamodule, register_datamodule

__all__ = ["all_datamodules", "get_datamodule", "register_datamodule"]
