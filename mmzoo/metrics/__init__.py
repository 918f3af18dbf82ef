"""torchmetrics ``Metric`` classes with the official evaluation code's exact definitions.

Every state is a concatenated or summed tensor with a ``dist_reduce_fx``, so each metric is exact
under DDP. Ground floor: imports only torch and torchmetrics.

=====================  ===========================================================================
module                 metrics
=====================  ===========================================================================
``classification``     multi-view top-k accuracy, EPIC verb / noun / action accuracy, multi-label
                       mAP (Charades)
``vid_map``            ImageNet VID per-class AP at IoU 0.5, as the ILSVRC2015 devkit computes it
``retrieval``          text-video R@K, median and mean rank, both directions
``segment_accuracy``   AVE per-segment accuracy (Lin 2019, Sec. 4.0.2)
=====================  ===========================================================================
"""
