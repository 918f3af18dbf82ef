"""torchmetrics ``Metric`` classes with the official evaluation code's exact definitions.

Every state is a concatenated or summed tensor with a ``dist_reduce_fx``, so each metric is exact
under DDP. Ground floor: imports only torch and torchmetrics.

=====================  ===========================================================================
module                 metrics
=====================  ===========================================================================
``classification``     multi-view top-k accuracy; EPIC verb / noun / action accuracy with the
                       EPIC-100 subsets and EPIC-55 class-mean precision / recall; Charades mAP
``vid_map``            ImageNet VID per-class AP at IoU 0.5, as the ILSVRC2015 devkit computes it
``vid_motion``         VID AP by object speed (motion IoU) and size, as FGFA reports it
``retrieval``          text-video R@K, median and mean rank, both directions
``segment_accuracy``   AVE per-segment accuracy (Lin 2019, Sec. 4.0.2)
``coco``               COCO box / mask AP through pycocotools ``COCOeval``
``davis``              DAVIS-2017 J and F, as davis2017-evaluation computes them
``pck``                JHMDB PCK@alpha, as the TimeCycle lineage's ``eval_pck.py``
``vip``                VIP part mIoU and instance-part AP^r_vol (ATEN ``test_inst_part_ap.py``)
``reconstruction``     frame reconstruction L1 at frame gaps (TimeCycle Sec. 2.3.6)
``activitynet``        ActivityNet / FCVID video-level mAP (the official classification code)
``egtea``              EGTEA Gaze+ mean class accuracy
=====================  ===========================================================================
"""
