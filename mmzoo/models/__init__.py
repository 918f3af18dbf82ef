"""One module per thesis method; each registers its ids with `mmzoo.registry.register_model`.

`mmzoo.registry` imports every module of this package on first use, so adding a model
never means editing a shared file.
"""
