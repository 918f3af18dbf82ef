"""Reusable network blocks, each written once and shared by the model families.

Ground floor: imports only torch, timm/torchvision and :mod:`mmzoo.data.constants`.

==========================  ==================================================================
module                      blocks
==========================  ==================================================================
``resnet3d``                one 3D ResNet pathway builder (Slow, Fast, Audio, C2D / I3D stems,
                            bottleneck and decomposed audio blocks, weight init)
``slowfast``                SlowFast / AVSlowFast backbones and multi-pathway heads (Xiao 2020, ch. 4)
``av_fusion``               lateral connections: Fast->Slow, Audio->(Fast, Slow), A->F->S, AV non-local
``av_sync``                 hierarchical audio-visual synchronisation loss and negative curriculum
``drop_pathway``            DropPathway (Xiao 2020, Sec. 4.3)
``nonlocal_block``          space-time non-local block (Wang et al., CVPR 2018)
``rfcn``                    R-FCN / Fast R-CNN parts: backbones, RPN, position-sensitive RoI heads, OHEM
``stmm``                    STMM with BN* and the ConvGRU ablation (Xiao 2020, Eqs. 3.1-3.4)
``matchtrans``              MatchTrans memory alignment (Xiao 2020, Sec. 3.3.2)
``seq_nms``                 Seq-NMS temporal rescoring (Han et al. 2016)
``ave_attention``           AVE audio-guided attention and CM-CoAtt (Lin 2019, Sec. 3.0.3-3.0.4)
``vggish``                  VGGish audio network and its log-mel front end (Hershey et al. 2017)
``netvlad``                 NetVLAD / GhostVLAD with shared centres (T2VLAD, Wang et al. CVPR 2021)
``gating``                  context gating and gated embedding units (Miech et al. 2017; T2VLAD)
``bert_text``               the BERT text encoder of T2VLAD (transformers) and its tokenizer
``ranking_loss``            bidirectional max-margin ranking losses for retrieval
``lookahead``               the Lookahead optimizer wrapper of the T2VLAD recipe (Zhang et al. 2019)
``timm_backbone``           timm 2D backbones with ImageNet weights, or a loud random init
``i3d_inception``           I3D Inception-v1 (Carreira & Zisserman 2017)
``r2plus1d``                R(2+1)D-34 with VMZ's intermediate widths (Tran et al. 2018)
``resnet3d_hara``           ResNet-50-3D of Hara et al. (3D-ResNets-PyTorch)
``ipl``                     Interactive Prototype Learning head (Wang 2021, ch. 4, Eqs. 4.2-4.5)
``crm``                     PSN's context reasoning module: ED-TCN, TCN, non-local (Wang 2021, ch. 5)
``timecycle``               TimeCycle encoder, affinity, localizer, patch sampler, losses (ch. 2)
``label_propagation``       top-k label propagation for DAVIS / JHMDB / VIP (TimeCycle Sec. 2.4)
``reconstruction``          long-range flow from feature affinities and frame warping (Sec. 2.3.6)
==========================  ==================================================================
"""
