"""Makes docs/images/t2vlad_results_example.png: a PNG contact sheet of the results page
(`results.html`) that `mmzoo predict --model t2vlad --input ROOT --query TEXT` writes.

No browser is available to screenshot the page, so this draws the page's own content with PIL:
the query, then per row the rank, video id, score, the JPEG thumbnails embedded in the page and
the first captions (the ground-truth video of the query highlighted, a "no video" placeholder
where the mp4 is missing). The data are mmzoo's synthetic MSR-VTT (`write_msrvtt`, 100 videos,
audio + s3d features) with one mp4 per 1k-A test video but one, drawn in the colour its captions
name; the model is a tiny T2VLAD with random weights (so the order is arbitrary: the picture
shows the page, not a model). Run from the repository root:

    .venv/bin/python docs/images/t2vlad_results_example.py
"""
from __future__ import annotations

import base64
import io
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from mmzoo.data.media import write_mp4
from mmzoo.data.synthetic.msrvtt import SYNTHETIC_VOCAB, write_msrvtt
from mmzoo.models.t2vlad import T2VLAD
from mmzoo.predict.t2vlad import rank_feature_set

OUT = Path(__file__).with_suffix(".png")
TOP_K = 6
# the query is the first caption of 1k-A test video QUERY_VIDEO, and test video NO_VIDEO has no
# mp4: chosen (these weights rank them 3rd and 4th) so that the picture shows a ground-truth row
# and a placeholder
QUERY_VIDEO, NO_VIDEO = 3, 13
COLOURS = {"red": (200, 50, 50), "blue": (50, 80, 200), "green": (40, 160, 70), "yellow": (220, 200, 40)}


def _video(colour: str, seed: int) -> np.ndarray:
    """24 frames 96x128: the caption's colour, a light square crossing the frame."""
    frames = np.empty((24, 96, 128, 3), np.uint8)
    frames[:] = np.array(COLOURS[colour], np.uint8)
    for t in range(24):
        x, y = (8 + 4 * t + 11 * seed) % 100, 20 + int(20 * np.sin(t / 4 + seed))
        frames[t, y: y + 28, x: x + 28] = 235
    return frames


def make_page(tmp: Path) -> Path:
    root = write_msrvtt(tmp / "msrvtt", num_videos=100, num_mp4=0, experts=["audio", "s3d"], seed=1)
    records = json.loads((root / "MSRVTT_data.json").read_text())
    first_caption = {}
    for s in sorted(records["sentences"], key=lambda s: s["sen_id"]):
        first_caption.setdefault(s["video_id"], s["caption"])
    test_ids = (root / "structured-symlinks" / "val_list_jsfusion.txt").read_text().split()
    for j, v in enumerate(test_ids):
        if j == NO_VIDEO:
            continue
        colour = next(c for c in COLOURS if c in first_caption[v].split())
        write_mp4(root / "videos" / "all" / f"{v}.mp4", _video(colour, j), fps=12)
    vocab = tmp / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + SYNTHETIC_VOCAB) + "\n")
    torch.manual_seed(0)
    cfg = dict(vocab_size=len(SYNTHETIC_VOCAB) + 5, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=64, max_position_embeddings=64)
    model = T2VLAD(experts=["audio", "s3d"], expert_dims=[128, 1024], expert_max_tokens=[4, 4], text_encoder_config=cfg,
                   text_encoder_init="random", tokenizer=str(vocab), embed_dim=32, transformer_ffn_dim=32,
                   num_clusters=3, text_max_tokens=16).eval()  # random weights: the order is arbitrary
    rank_feature_set(model, str(root), str(tmp / "out"), query=first_caption[test_ids[QUERY_VIDEO]], top_k=TOP_K)
    return tmp / "out"


def contact_sheet(out: Path) -> Image.Image:
    """The page's content as one picture: thumbnails are the page's own JPEG data URIs."""
    meta = json.loads((out / "results.json").read_text())
    page = (out / "results.html").read_text()
    imgs = {}
    for tr in page.split('<tr class="result')[1:]:
        vid = re.search(r'data-video-id="([^"]+)"', tr).group(1)
        imgs[vid] = [Image.open(io.BytesIO(base64.b64decode(s))).convert("RGB")
                     for s in re.findall(r'src="data:image/jpeg;base64,([^"]+)"', tr)]
    font, bold, small = (ImageFont.load_default(size=s) for s in (14, 17, 12))
    th_w, th_h, row_h, left = 128, 96, 112, 250
    notes = ["Ground truth: " + ", ".join(f"{g['video_id']} at rank {g['rank']}" for g in meta["ground_truth"])] \
        if meta["ground_truth"] else []
    if meta["missing_videos"]:
        notes.append("No video for: " + ", ".join(f"{m['video_id']} ({Path(m['reason']).name})" for m in meta["missing_videos"]))
    top = 62 + 18 * len(notes) + 6
    width, height = left + 4 * (th_w + 4) + 360, top + row_h * len(meta["rows"]) + 4
    sheet = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(sheet)
    d.text((12, 10), "Text-to-video retrieval (mmzoo predict --model t2vlad, results.html)", fill=(30, 30, 30), font=bold)
    d.text((12, 36), f"Query: \u201c{meta['query']}\u201d", fill=(0, 0, 0), font=font)
    for j, note in enumerate(notes):
        d.text((12, 60 + 18 * j), note, fill=(170, 50, 50) if note.startswith("No video") else (90, 90, 90), font=small)
    for k, row in enumerate(meta["rows"]):
        y = top + k * row_h
        if row["ground_truth"]:
            d.rectangle((4, y - 4, width - 5, y + row_h - 8), fill=(231, 246, 231), outline=(51, 170, 51), width=2)
        d.text((12, y + 4), f"#{row['rank']}", fill=(0, 0, 0), font=bold)
        d.text((52, y + 6), row["video_id"] + ("  ground truth" if row["ground_truth"] else ""), fill=(0, 0, 0), font=font)
        d.text((52, y + 28), f"score {row['score']:.4f}", fill=(60, 60, 60), font=font)
        if imgs.get(row["video_id"]):
            for j, im in enumerate(imgs[row["video_id"]]):
                sheet.paste(im.resize((th_w, th_h)), (left + j * (th_w + 4), y))
        else:
            d.rectangle((left, y, left + 4 * (th_w + 4) - 4, y + th_h), fill=(240, 240, 240), outline=(170, 170, 170))
            d.text((left + 2 * (th_w + 4) - 30, y + th_h // 2 - 8), "no video", fill=(110, 110, 110), font=font)
        x = left + 4 * (th_w + 4) + 10
        for j, cap in enumerate((row["captions"] or [])[:5]):
            d.text((x, y + 2 + 18 * j), f"{j + 1}. {cap}"[:52], fill=(40, 40, 40), font=small)
    return sheet


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = make_page(Path(tmp))
        sheet = contact_sheet(out)
    sheet.save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)", file=sys.stderr)


if __name__ == "__main__":
    main()
