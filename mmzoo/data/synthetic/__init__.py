"""Tiny datasets written in each dataset's official layout (real mp4 with audio, JPEG frames,
the real annotation and feature files), read back by the real loaders in tests, benchmarks and
the demo.

- ``write_mp4`` (H.264 + AAC) and ``write_jpeg_frames``: :mod:`mmzoo.data.media`
- ``write_ave``: AVE (dataset release + the authors' code release), :mod:`.ave`
- ``write_kinetics``: Kinetics-400/600 CSVs and clips, :mod:`.kinetics`
- ``write_epic``: EPIC-Kitchens-55/100 CSVs, frames and videos, :mod:`.epic_kitchens`
- ``write_vid``: ImageNet VID (ILSVRC2015) frames, XML and ImageSets, :mod:`.vid`
- ``write_msrvtt``: MSR-VTT json, split lists, expert features and videos, :mod:`.msrvtt`
"""
from mmzoo.data.synthetic.ave import write_ave
from mmzoo.data.synthetic.epic_kitchens import write_epic
from mmzoo.data.synthetic.kinetics import write_kinetics
from mmzoo.data.media import write_jpeg_frames, write_mp4
from mmzoo.data.synthetic.msrvtt import write_msrvtt
from mmzoo.data.synthetic.vid import write_vid

__all__ = ["write_ave", "write_epic", "write_jpeg_frames", "write_kinetics", "write_mp4", "write_msrvtt",
           "write_vid"]
