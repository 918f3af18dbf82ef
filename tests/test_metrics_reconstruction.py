"""Frame reconstruction L1 (thesis 003 ch. 2, Sec. 2.3.6; Table 2.5 of the seed, "Table 2.4" of the
digest): the metric by hand, its accumulation, and the affinity-flow warp on a known translation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import mmzoo
from mmzoo.data import get_datamodule
from mmzoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
from mmzoo.data.synthetic.davis import write_davis
from mmzoo.metrics.reconstruction import FrameReconstructionL1, frame_l1
from mmzoo.models.labelprop import reconstruction_error
from mmzoo.nn.reconstruction import correspondence_flow, frame_pairs, reconstruct_frame, warp

H, W, T, SPEED = 32, 160, 11, 8  # a 4 x 20 feature grid; the camera pans 8 px (one cell) a frame


def _texture(h, w, seed):
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(1, 3, h // 4, w // 4, generator=g), scale_factor=4, mode="bilinear")[0] * 255


def _pan(seed=0, frames=T):
    """RGB ``(3, T, H, W)`` in [0, 255]: windows of a wide texture, shifted SPEED px left per frame."""
    big = _texture(H, W + frames * SPEED, seed)
    return torch.stack([big[:, :, t * SPEED : t * SPEED + W] for t in range(frames)], 1)


def _normalise(rgb):
    m = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
    s = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    return (rgb / 255 - m) / s


@pytest.fixture(scope="module")
def identity():
    return mmzoo.create("labelprop-identity").eval()


# ---------------------------------------------------------------------------- the metric
def test_frame_l1_by_hand():
    target = torch.zeros(3, 2, 2)
    pred = torch.tensor([[[10.0, 0.0], [0.0, 0.0]], [[0.0, 20.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, -30.0]]])
    # |diff| sums to 60 over 12 values: 5 per value (channel mean), 15 per pixel (channel sum)
    assert frame_l1(pred, target).tolist() == pytest.approx([5.0])
    assert frame_l1(pred, target, channel_reduction="sum").tolist() == pytest.approx([15.0])
    assert frame_l1(pred / 255, target, data_range=1.0).tolist() == pytest.approx([5.0])  # [0, 1] inputs
    two = frame_l1(torch.stack([pred, pred * 2]), torch.stack([target, target]))
    assert two.tolist() == pytest.approx([5.0, 10.0])
    with pytest.raises(ValueError):
        frame_l1(pred, target[:, :1])


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_metric_accumulates_per_frame_errors_per_gap_and_resets():
    m = FrameReconstructionL1(gaps=(5, 10))
    z = torch.zeros(3, 3, 4, 4)
    m.update(z + torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1, 1), z, gap=5)  # three frames: 1, 2, 3
    m.update(z[0] + 10, z[0], gap=5)  # one more frame: 10
    m.update(torch.full((2, 3, 4, 4), 7.0), torch.zeros(2, 3, 4, 4), gap=10)
    out = m.compute()
    assert out["l1@5"].item() == pytest.approx((1 + 2 + 3 + 10) / 4)  # per frame, not per update
    assert out["l1@10"].item() == pytest.approx(7.0)
    assert int(m.count_5) == 4 and int(m.count_10) == 2
    with pytest.raises(ValueError, match="gap 3"):
        m.update(z, z, gap=3)
    m.reset()
    with pytest.raises(ValueError, match="zero frames"):
        m.compute()
    m.update(z, z, gap=5)
    with pytest.raises(ValueError, match=r"\[10\]"):  # a gap that saw nothing is an error, not 0
        m.compute()


def test_metric_states_sum_across_ranks():
    a, b = FrameReconstructionL1(gaps=(5,)), FrameReconstructionL1(gaps=(5,))
    a.update(torch.full((1, 3, 2, 2), 4.0), torch.zeros(1, 3, 2, 2), 5)
    b.update(torch.full((3, 3, 2, 2), 8.0), torch.zeros(3, 3, 2, 2), 5)
    assert {a._reductions[k].__name__ for k in ("error_sum_5", "count_5")} == {"dim_zero_sum"}  # exact under DDP
    a.merge_state(b)  # what the DDP sync computes
    assert a.compute()["l1@5"].item() == pytest.approx((4 + 3 * 8) / 4)


# ---------------------------------------------------------------------------- flow and warp
def test_correspondence_flow_by_hand_and_renormalised_top_k():
    # a 1 x 3 grid with one-hot features: target cells 0, 1, 2 look like source cells 2, 0, 1
    src = torch.eye(3).view(3, 1, 3)
    tgt = torch.eye(3)[:, [2, 0, 1]].view(3, 1, 3)
    flow = correspondence_flow(src, tgt, topk=1, temperature=0.5)
    centres = torch.tensor([-2 / 3, 0.0, 2 / 3])  # normalised x of the cell centres
    assert torch.allclose(flow[0, 0], centres[[2, 0, 1]] - centres, atol=1e-6)  # the weight is renormalised
    assert torch.allclose(flow[1], torch.zeros(1, 3))
    # a target cell equally like every source cell: the (renormalised) mean position, 0
    blur = correspondence_flow(src, torch.ones(3, 1, 3), topk=3, temperature=1.0)
    assert torch.allclose(blur[0, 0], -centres, atol=1e-6)


def test_warp_moves_pixels_by_the_upsampled_flow():
    img = torch.arange(2 * 8 * 8, dtype=torch.float32).view(2, 8, 8)
    flow = torch.zeros(2, 2, 2)
    flow[0] = 2 * 2 / 8  # +2 pixels in x, in normalised units, on a coarse 2 x 2 grid
    out = warp(img, flow)
    assert torch.allclose(out[:, :, :6], img[:, :, 2:])
    assert torch.allclose(out[:, :, 6:], img[:, :, 7:8].expand(2, 8, 2))  # border padding


def test_identity_features_reconstruct_a_known_translation_exactly(identity):
    rgb = _pan()
    feats = identity.sequence_features(_normalise(rgb))
    for gap in (5, 10):
        rec = reconstruct_frame(rgb[:, 0], feats[0], feats[gap], topk=1, normalized=True)
        keep = W - gap * SPEED - 8  # the columns whose source is in frame 0, less one cell
        assert torch.allclose(rec[:, :, :keep], rgb[:, gap, :, :keep], atol=0.01)
        assert not torch.allclose(rgb[:, 0, :, :keep], rgb[:, gap, :, :keep], atol=1.0)  # not a no-op


def test_reconstruction_error_is_low_on_a_pan_and_high_on_unrelated_frames(identity):
    rgb = _pan()
    video = _normalise(rgb)
    ours = reconstruction_error(identity, video, gaps=(5, 10))
    copy = reconstruction_error(None, video, gaps=(5, 10))  # the Identity row: I'_t = I_s
    unrelated = torch.stack([_texture(H, W, 100 + t) for t in range(T)], 1)
    random = reconstruction_error(identity, _normalise(unrelated), gaps=(5, 10))
    other = _pan(seed=7)  # the source frame from another video
    feats, feats_other = identity.sequence_features(video), identity.sequence_features(_normalise(other))
    rec_other = reconstruct_frame(other[:, 0], feats_other[0], feats[5], normalized=True)
    mismatched = frame_l1(rec_other, rgb[:, 5]).item()
    print(f"pan L1 {ours}, copy {copy}, unrelated frames {random}, source from another video {mismatched:.1f}")
    for g in ("l1@5", "l1@10"):
        assert ours[g] < 0.6 * copy[g], (g, ours, copy)
        assert ours[g] < 0.6 * random[g], (g, ours, random)
    assert ours["l1@5"] < ours["l1@10"]  # farther sources leave more of I_t unseen
    assert ours["l1@5"] < 0.6 * mismatched
    # the model method: the same numbers, with the model's topk / temperature
    assert identity.reconstruction_error(video) == pytest.approx(ours)


def test_reconstruction_error_accumulates_a_dataset_per_frame(identity):
    a, b = _pan(seed=0, frames=11), _pan(seed=1, frames=12)
    m = FrameReconstructionL1(gaps=(5, 10))
    ra = reconstruction_error(identity, _normalise(a), metric=m)
    rb = reconstruction_error(identity, _normalise(b), metric=m)
    assert frame_pairs(11, 5) == [(t - 5, t) for t in range(5, 11)] and len(frame_pairs(12, 10)) == 2
    out = m.compute()
    assert out["l1@5"].item() == pytest.approx((6 * ra["l1@5"] + 7 * rb["l1@5"]) / 13, rel=1e-5)
    assert out["l1@10"].item() == pytest.approx((1 * ra["l1@10"] + 2 * rb["l1@10"]) / 3, rel=1e-5)
    batch = torch.stack([_normalise(a), _normalise(_pan(seed=1, frames=11))])  # (B, 3, T, H, W)
    assert reconstruction_error(identity, batch)["l1@5"] != pytest.approx(ra["l1@5"])
    with pytest.raises(ValueError, match="no pair"):
        reconstruction_error(identity, _normalise(a[:, :8]))


def test_rgb_at_another_size_and_a_tiny_timecycle():
    rgb = _pan()
    video = _normalise(rgb)
    big = F.interpolate(rgb.transpose(0, 1), scale_factor=2, mode="bilinear").transpose(0, 1)
    identity = mmzoo.create("labelprop-identity").eval()
    small = reconstruction_error(identity, video, gaps=(5,))
    large = reconstruction_error(identity, video, gaps=(5,), rgb=big)  # flows are resolution independent
    assert large["l1@5"] == pytest.approx(small["l1@5"], rel=0.25)
    torch.manual_seed(0)
    model = mmzoo.create("timecycle-r18", depth=10, width=8, feature_dim=16, crop_size=72, patch_size=24,
                         localizer_channels=[8, 8], localizer_kernel=2).eval()
    out = model.reconstruction_error(video[:, :, :, :64], gaps=(5, 10))
    assert set(out) == {"l1@5", "l1@10"} and all(0 <= v <= 255 for v in out.values())


def test_synthetic_davis_sequence_from_the_datamodule(tmp_path, identity):
    write_davis(tmp_path, {"val": ["pan"]}, num_frames=12, num_objects=1, velocity=(8, 0))
    dm = get_datamodule("davis2017")(root=str(tmp_path), frame_size=None, num_workers=0)
    dm.setup("test")
    video = dm.dataset("test")[0]["video"]
    ours = reconstruction_error(identity, video, gaps=(5, 10))
    copy = reconstruction_error(None, video, gaps=(5, 10))
    print(f"synthetic DAVIS: {ours} vs copy {copy}")
    assert ours["l1@5"] < copy["l1@5"] and ours["l1@10"] < copy["l1@10"]
