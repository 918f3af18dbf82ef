"""The media writers, re-exported from :mod:`mmzoo.data.media` for the synthetic datasets' callers."""
from mmzoo.data.media import video_codec_available, write_jpeg_frames, write_mp4

__all__ = ["write_mp4", "write_jpeg_frames", "video_codec_available"]
