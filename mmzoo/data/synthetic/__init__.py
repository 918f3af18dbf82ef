"""Tiny datasets written in each dataset's official layout (real mp4 with audio, JPEG frames,
the real annotation and feature files), read back by the real loaders in tests and the demo.

- :mod:`mmzoo.data.synthetic.media`: ``write_mp4`` (H.264 + AAC) and ``write_jpeg_frames``.
- :mod:`mmzoo.data.synthetic.ave`: ``write_ave`` (AVE release + authors' code release layout).
"""
from mmzoo.data.synthetic.media import write_jpeg_frames, write_mp4

__all__ = ["write_jpeg_frames", "write_mp4"]
