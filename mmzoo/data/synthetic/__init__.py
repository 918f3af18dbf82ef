"""Tiny datasets written in each dataset's official layout (real mp4/avi with audio, JPEG/PNG
frames, the real annotation and feature files), read back by the real loaders in tests,
benchmarks and the demo.

- ``write_mp4`` (H.264 + AAC) and ``write_jpeg_frames``: :mod:`mmzoo.data.media`
- ``write_ave``: AVE (dataset release + the authors' code release), :mod:`.ave`
- ``write_kinetics``: Kinetics-400/600 CSVs and clips, :mod:`.kinetics`
- ``write_epic``: EPIC-Kitchens-55/100 CSVs, frames, optical flow and videos, :mod:`.epic_kitchens`
- ``write_vid``: ImageNet VID (ILSVRC2015) frames, XML and ImageSets, :mod:`.vid`
- ``write_msrvtt``: MSR-VTT json, split lists, expert features and videos, :mod:`.msrvtt`
- ``write_charades``: Charades v1 CSVs and RGB frame folders, :mod:`.charades`
- ``write_coco``: COCO 2017 instances JSON and images, :mod:`.coco`
- ``write_davis`` / ``write_jhmdb`` / ``write_vip`` / ``write_video_folder``: label-propagation
  benchmarks and raw video folders (TimeCycle), :mod:`.davis`, :mod:`.jhmdb`, :mod:`.vip`,
  :mod:`.video_folder`
- ``write_egtea``: EGTEA Gaze+ clips and split lists, :mod:`.egtea`
- ``write_activitynet`` / ``write_fcvid``: untrimmed-video benchmarks (PSN), :mod:`.activitynet`,
  :mod:`.fcvid`
- ``write_ucf101`` / ``write_hmdb51``: avi releases and split files, :mod:`.ucf101`, :mod:`.hmdb51`
- ``write_aot_folder``: Arrow-of-Time clip folders, :mod:`.arrow_of_time`
"""
from mmzoo.data.media import write_jpeg_frames, write_mp4
from mmzoo.data.synthetic.activitynet import write_activitynet
from mmzoo.data.synthetic.arrow_of_time import write_aot_folder
from mmzoo.data.synthetic.audioset import write_audioset
from mmzoo.data.synthetic.ave import write_ave
from mmzoo.data.synthetic.charades import write_charades
from mmzoo.data.synthetic.coco import write_coco
from mmzoo.data.synthetic.davis import write_davis
from mmzoo.data.synthetic.dcase2014 import write_dcase2014
from mmzoo.data.synthetic.egtea import write_egtea
from mmzoo.data.synthetic.epic_kitchens import write_epic
from mmzoo.data.synthetic.esc50 import write_esc50
from mmzoo.data.synthetic.fcvid import write_fcvid
from mmzoo.data.synthetic.hmdb51 import write_hmdb51
from mmzoo.data.synthetic.jhmdb import write_jhmdb
from mmzoo.data.synthetic.kinetics import write_kinetics
from mmzoo.data.synthetic.msrvtt import write_msrvtt
from mmzoo.data.synthetic.something_something import write_something_something
from mmzoo.data.synthetic.ucf101 import write_ucf101
from mmzoo.data.synthetic.vid import write_vid
from mmzoo.data.synthetic.video_folder import write_video_folder
from mmzoo.data.synthetic.vip import write_vip

__all__ = ["write_activitynet", "write_aot_folder", "write_audioset", "write_ave", "write_charades", "write_coco",
           "write_davis", "write_dcase2014", "write_egtea", "write_epic", "write_esc50", "write_fcvid", "write_hmdb51",
           "write_jpeg_frames", "write_jhmdb", "write_kinetics", "write_mp4", "write_msrvtt",
           "write_something_something", "write_ucf101", "write_vid", "write_video_folder", "write_vip"]
