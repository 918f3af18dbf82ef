"""Arrow of Time T-CAM (Wei et al., CVPR 2018; seed 004 B.4): the VGG-16 trunk against
torchvision's, segment concatenation, fusion and GAP, CAMs that average to the logits, the
forward / backward data, and CAM prediction on a video file."""
from __future__ import annotations

import json

import pytest
import torch
import torchvision
from torch import nn

import mmzoo
from mmzoo.data.arrow_of_time import ArrowOfTimeDataModule
from mmzoo.data.flow import compute_flow, dequantise, quantise
from mmzoo.data.synthetic.arrow_of_time import write_aot_folder
from mmzoo.data.synthetic.ucf101 import write_ucf101
from mmzoo.models.aot import AOT_FINETUNE_ROWS, TCAM

TINY = {"flow_frames": 2, "widths": [4, 8, 8, 16, 16], "crop_size": 32}


def _torchvision_trunk(in_channels: int) -> nn.Module:
    """torchvision's VGG-16-BN features with a 2L-channel conv1 and without the fifth max-pool:
    an independent build of the T-CAM trunk (BN order differs, counts do not)."""
    f = torchvision.models.vgg16_bn(weights=None).features
    f[0] = nn.Conv2d(in_channels, 64, 3, padding=1)
    return nn.Sequential(*list(f)[:-1])


def test_full_size_matches_torchvision_vgg16_plus_the_fusion():
    with torch.device("meta"):
        model = mmzoo.create("aot-tcam-vgg16")
        trunk = _torchvision_trunk(20)
    n_trunk = sum(p.numel() for p in trunk.parameters())
    fusion = 2 * (1024 * 1024 * 9 + 1024 + 2 * 1024)  # two 3x3 convs of T x 512 = 1024 channels + BN
    assert sum(p.numel() for p in model.vgg.parameters()) == n_trunk
    assert model.num_parameters() == n_trunk + fusion + 1025
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"), FlopCounterMode(display=False) as c:
        trunk(torch.randn(2, 20, 224, 224))
    trunk_macs = c.get_total_flops() // 2  # two segments in one batch
    fusion_macs = 2 * 1024 * 1024 * 9 * 14 * 14
    with torch.device("meta"):
        macs = model.count_flops()
    assert abs(macs - trunk_macs - fusion_macs) / macs < 0.001
    with torch.device("meta"):
        assert model(**model.example_input(2)).shape == (2, 1)
        assert model.fused_maps(**model.example_input(1)).shape == (1, 1024, 14, 14)  # conv5 at 1/16: pool5 removed


def test_segments_share_the_trunk_and_are_concatenated_in_order():
    torch.manual_seed(0)
    m = mmzoo.create("aot-tcam-vgg16", **TINY).eval()
    flow = torch.randn(2, 8, 32, 32)
    seg = [flow[:, :4], flow[:, 4:]]
    with torch.no_grad():
        per = []
        for s in seg:
            x = s
            for block in m.vgg:
                x = block(x)
            per.append(x)
        expected = m.fusion(torch.cat(per, 1))
        assert torch.allclose(m.fused_maps(flow), expected, atol=1e-6)
        swapped = torch.cat([flow[:, 4:], flow[:, :4]], 1)
        assert not torch.allclose(m(swapped), m(flow))  # segment order matters (time)
    with pytest.raises(ValueError, match="2 segments x 4"):
        m(torch.randn(1, 6, 32, 32))


def test_cam_averages_to_the_logits():
    torch.manual_seed(0)
    m = mmzoo.create("aot-tcam-vgg16", **TINY).eval()
    flow = torch.randn(3, 8, 32, 32)
    with torch.no_grad():
        cam = m.cam(flow)
        assert cam.shape == (3, 1, 2, 2)
        assert torch.allclose(cam.mean(dim=(2, 3)), m(flow), atol=1e-5)


def test_finetune_rows_are_the_slides_table():
    assert len(AOT_FINETUNE_ROWS) == 15
    assert AOT_FINETUNE_ROWS["aot-ucf101 / finetune-after-fusion"]["ucf101"] == 81.2
    assert AOT_FINETUNE_ROWS["random / finetune-all"]["ucf101"] == 79.3


@pytest.fixture(scope="module")
def falling(tmp_path_factory):
    return write_aot_folder(tmp_path_factory.mktemp("aot") / "falling", "falling", train=32, test=24, num_frames=10)


def _dm(root, **kw):
    return ArrowOfTimeDataModule(str(root), num_segments=2, flow_frames=2, short_side=32, crop_size=32,
                                 flow_method="farneback", batch_size=8, num_workers=0, **kw)


def test_backward_sample_is_the_flow_of_the_reversed_frames(falling, tmp_path):
    dm = _dm(falling["root"], flow_cache=str(tmp_path / "cache"), num_clips=1, flip=False)
    dm.setup("test")
    ds = dm.datasets["test"]
    assert len(ds) == 2 * 24
    fw, bw = ds[0], ds[1]
    assert (fw["label"], bw["label"]) == (1, 0) and fw["video_index"] != bw["video_index"]
    s = fw["meta"]["start"]
    assert bw["meta"]["start"] == s and fw["flow"].shape == (8, 32, 32)
    from mmzoo.data.decode import read_video_clip

    frames = read_video_clip(falling["test"][0], short_side=32).frames.numpy()[s:s + 5]
    expect_bw = dequantise(quantise(compute_flow(frames[::-1], "farneback"))) / 20.0
    assert torch.equal(bw["flow"], torch.from_numpy(expect_bw).reshape(8, 32, 32))
    assert any((tmp_path / "cache").rglob("backward/meta.json"))


def test_tcam_learns_the_arrow_of_falling_objects_but_not_of_static_noise(falling, tmp_path):
    import pytorch_lightning as pl

    noise = write_aot_folder(tmp_path / "noise", "noise", train=32, test=24, num_frames=10)
    acc = {}
    for name, root in (("falling", falling["root"]), ("noise", noise["root"])):
        pl.seed_everything(0)
        m = mmzoo.create("aot-tcam-vgg16", **TINY, dropout=0.0, base_lr=0.05, base_batch_size=None, lr_schedule="cosine")
        trainer = pl.Trainer(max_epochs=8, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, check_val_every_n_epoch=100)
        dm = _dm(root, num_clips=2)
        trainer.fit(m, dm)
        acc[name] = trainer.test(m, dm, verbose=False)[0]["test/top1"]
    print(acc)
    assert acc["falling"] >= 80.0
    assert 25.0 <= acc["noise"] <= 70.0  # 48 test plays: chance is 50 %


def test_action_task_reads_a_labelled_source(tmp_path):
    ucf = write_ucf101(tmp_path / "ucf", groups=3, num_frames=6)
    dm = _dm(ucf["root"], source="ucf101", source_kwargs={"split": 2}, task="action")
    dm.setup("fit")
    assert dm.num_classes == 3
    items = [dm.datasets["val"][i] for i in range(len(dm.datasets["val"]))]
    assert [it["label"] for it in items] == [0, 1, 2] and all(it["meta"]["direction"] == "forward" for it in items)


def test_predict_writes_cams_and_forward_probabilities(falling, tmp_path):
    import mmzoo.predict.aot
    from mmzoo.predict import predict_input

    torch.manual_seed(0)
    m = mmzoo.create("aot-tcam-vgg16", **TINY).eval()
    res = predict_input(m, falling["test"][0], str(tmp_path / "out"))
    assert len(res["windows"]) == 3 and 0.0 < res["p_forward"] < 1.0
    assert (tmp_path / "out" / res["windows"][0]["cam"]).is_file()
    assert json.loads((tmp_path / "out" / "aot.json").read_text())["p_forward"] == res["p_forward"]
    assert isinstance(m, TCAM)
