"""Publishing and fetching zoo models: the local-directory hub and the Hugging Face Hub.

A published model is a folder (a local-hub entry or a Hub repo, same layout) of config.json,
model.safetensors and README.md; `config.json` alone rebuilds the architecture. The package's
rooms:

- `mmzoo.hub.repo`: the folder format (config.json and its format version, model.safetensors,
  the one strict state-dict loader, sha256 helpers);
- `mmzoo.hub.sources`: where folders come from (the local hub `$MMZOO_HUB`, the Hugging Face Hub
  through `huggingface_hub`, the authors' original files through their registered converter);
- `mmzoo.hub.names`: the one parser of model names ('id', 'id.tag', 'hf-hub:owner/name',
  'owner/name', a folder);
- `mmzoo.hub.checkpoint`: Lightning-checkpoint import;
- `mmzoo.hub.api`: `load`, `pull`, `load_pretrained_state`, `push`.

The offline policy is `mmzoo.offline.hf_offline`, re-exported here.
"""
from __future__ import annotations

# Each room lists its public names in __all__; the package exports all of them.
from mmzoo.hub import api, checkpoint, names, repo, sources
from mmzoo.hub.api import *  # noqa: F401,F403
from mmzoo.hub.checkpoint import *  # noqa: F401,F403
from mmzoo.hub.names import *  # noqa: F401,F403
from mmzoo.hub.repo import *  # noqa: F401,F403
from mmzoo.hub.sources import *  # noqa: F401,F403
from mmzoo.offline import hf_offline

_hf_cache_dir = sources.hf_cache_dir  # the name tests and notebooks used before the hub became a package

__all__ = [*repo.__all__, *sources.__all__, *names.__all__, *checkpoint.__all__, *api.__all__, "hf_offline"]
