"""The T2VLAD results page (mmzoo.predict.results_page) written by
`mmzoo predict --model t2vlad --input ROOT --query TEXT`: rows equal to ranking.json's top-k,
thumbnails that are the video's frames (decoded here independently with PyAV), the ground-truth
video marked, every text escaped, missing videos shown as placeholders and listed, and the same
page from a saved index."""
import base64
import io
import json
from html.parser import HTMLParser

import av
import numpy as np
import pytest
import torch
from PIL import Image

from mmzoo.cli import main
from mmzoo.data.media import write_mp4
from mmzoo.data.synthetic.msrvtt import SYNTHETIC_VOCAB, write_msrvtt
from mmzoo.predict.results_page import write_results_page

EVIL = "a red man is running <script>alert('x')</script> & <b>bold</b>"
TOP_K = 5
NUM_FRAMES = 10
TINY = ["--model.experts", "[audio, face]", "--model.expert_dims", "[128, 512]", "--model.expert_max_tokens", "[5, 4]",
        "--model.text_encoder_config", json.dumps(dict(vocab_size=len(SYNTHETIC_VOCAB) + 5, hidden_size=16,
                                                       num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                                       max_position_embeddings=40)),
        "--model.text_encoder_init", "random", "--model.embed_dim", "16", "--model.transformer_ffn_dim", "16",
        "--model.num_clusters", "3", "--model.text_max_tokens", "8", "--pretrained", "false"]


def _frames(j: int) -> np.ndarray:
    """Video j: a colour of its own, brighter frame after frame, with a bar that moves down."""
    t = np.arange(NUM_FRAMES)[:, None, None, None]
    base = np.array([40 + 50 * (j % 4), 200 - 40 * (j % 5), 90 + 30 * (j % 3)])[None, None, None, :]
    frames = np.broadcast_to(np.clip(base + 16 * t, 0, 255), (NUM_FRAMES, 48, 64, 3)).astype(np.uint8).copy()
    for k in range(NUM_FRAMES):
        frames[k, 4 * k: 4 * k + 6, :, :] = 255 - frames[k, 0, 0]
    return frames


@pytest.fixture(scope="module")
def feature_set(tmp_path_factory):
    """1k-A test list of 6 videos: 4 with an mp4, 2 without; two of them also have the caption EVIL."""
    tmp = tmp_path_factory.mktemp("page")
    root = write_msrvtt(tmp / "msrvtt", num_videos=40, num_mp4=0, experts=["audio", "face"])
    test_ids = (root / "structured-symlinks" / "val_list_jsfusion.txt").read_text().split()
    assert len(test_ids) == 6
    no_video = {test_ids[1], test_ids[4]}
    for j, v in enumerate(test_ids):
        if v not in no_video:
            write_mp4(root / "videos" / "all" / f"{v}.mp4", _frames(j), fps=10)
    ann = json.loads((root / "MSRVTT_data.json").read_text())
    evil_videos = [test_ids[2], test_ids[3]]
    for k, v in enumerate(evil_videos):
        ann["sentences"].append({"caption": EVIL, "video_id": v, "sen_id": 100000 + k})
    for j, v in enumerate(test_ids):  # markup in a caption that is not the query
        ann["sentences"].append({"caption": "a <i>blue</i> cat & dog", "video_id": v, "sen_id": 200000 + j})
    (root / "MSRVTT_data.json").write_text(json.dumps(ann))
    vocab = tmp / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + SYNTHETIC_VOCAB) + "\n")
    return root, vocab, test_ids, no_video, evil_videos


class _Page(HTMLParser):
    """The parts of results.html a reader sees: query, rows (attributes, images, captions), notes."""

    def __init__(self, text):
        super().__init__()
        self.rows, self.query, self.missing, self.notes = [], "", [], ""
        self._where, self._td = None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class", "") or ""
        if tag == "tr" and "result" in cls.split():
            self.rows.append({**a, "imgs": [], "marks": [], "captions": [], "placeholder": False})
        elif tag == "td" and self.rows:
            self._td = cls
        elif tag == "img" and self.rows:
            self.rows[-1]["imgs"].append((a["src"], int(a["data-frame-index"])))
        elif tag == "span" and cls == "no-video":
            self.rows[-1]["placeholder"] = True
        elif tag == "q" and a.get("id") == "query":
            self._where = "query"
        elif tag == "li" and "data-video-id" in a:
            self.missing.append(a["data-video-id"])
        elif tag == "li" and self._td == "captions":
            self.rows[-1]["captions"].append("")
        elif tag == "mark":
            self._where = "mark"

    def handle_endtag(self, tag):
        if tag in ("q", "mark"):
            self._where = None
        elif tag == "td":
            self._td = None

    def handle_data(self, data):
        if self._where == "query":
            self.query += data
        elif self._where == "mark":
            self.rows[-1]["marks"].append(data)
        if self._td == "captions" and self.rows and self.rows[-1]["captions"]:
            self.rows[-1]["captions"][-1] += data
        if not self.rows:
            self.notes += data


def _independent_frames(path):
    """Every frame of the mp4, decoded with PyAV directly (not mmzoo's reader)."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _jpeg(src):
    assert src.startswith("data:image/jpeg;base64,")
    raw = base64.b64decode(src.split(",", 1)[1])
    img = Image.open(io.BytesIO(raw))
    assert img.format == "JPEG"
    return np.asarray(img.convert("RGB"), dtype=np.float32)


def _predict(root_or_index, vocab, out, query=EVIL):
    torch.manual_seed(0)  # the same random weights on every call, so a saved index fits them
    main(["predict", "--model", "t2vlad", "--input", str(root_or_index), "--query", query, "--output_dir", str(out),
          "--top_k", str(TOP_K), "--model.tokenizer", str(vocab), *TINY])
    return json.loads((out / "ranking.json").read_text()), _Page((out / "results.html").read_text())


def test_page_rows_thumbnails_captions_and_escaping(feature_set, tmp_path, capsys):
    root, vocab, test_ids, no_video, evil_videos = feature_set
    ranking, page = _predict(root, vocab, tmp_path / "out")
    # ranking.json is unchanged by the page: the same keys and every test video
    assert set(ranking) == {"query", "source", "ranking"} and sorted(r["video_id"] for r in ranking["ranking"]) == sorted(test_ids)
    top = ranking["ranking"][:TOP_K]
    # exactly top_k rows, in the JSON's order, with its scores (repr round-trips the float)
    assert [(int(r["data-rank"]), r["data-video-id"], float(r["data-score"])) for r in page.rows] == \
        [(k, r["video_id"], r["score"]) for k, r in enumerate(top, 1)]
    assert page.query == EVIL  # shown as text after unescaping ...
    html = (tmp_path / "out" / "results.html").read_text()
    assert "<script>" not in html and "<b>bold" not in html and "<i>blue" not in html  # ... and never as markup
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    rank_of = {r["video_id"]: k for k, r in enumerate(ranking["ranking"], 1)}
    ann = json.loads((root / "MSRVTT_data.json").read_text())
    for row in page.rows:
        vid = row["data-video-id"]
        if vid in no_video:
            assert row["placeholder"] and not row["imgs"]
            continue
        assert not row["placeholder"] and len(row["imgs"]) == 4
        frames = _independent_frames(root / "videos" / "all" / f"{vid}.mp4")
        want = [int((k + 0.5) * len(frames) / 4) for k in range(4)]  # centres of 4 equal segments
        assert [i for _, i in row["imgs"]] == want
        for (src, i) in row["imgs"]:
            got = _jpeg(src)
            assert got.shape == frames[i].shape
            assert np.abs(got - frames[i]).mean() < 5.0  # JPEG error; neighbouring frames differ by >= 16
            other = i + 1 if i + 1 < len(frames) else i - 1
            assert np.abs(got - frames[other]).mean() > 10.0  # so the comparison does tell frames apart
        # the video's ground-truth captions, in sen_id order, as text
        caps = [s["caption"] for s in sorted(ann["sentences"], key=lambda s: s["sen_id"]) if s["video_id"] == vid]
        assert row["captions"] == caps and len(caps) >= 20
    # the query's ground-truth videos: marked where shown (with the caption itself), ranked in the note
    shown_truth = [v for v in evil_videos if rank_of[v] <= TOP_K]
    assert shown_truth  # two of six, top 5 shown
    assert sorted(r["data-video-id"] for r in page.rows if "gt" in r["class"].split()) == sorted(shown_truth)
    assert all(r["marks"] == [EVIL] for r in page.rows if r["data-video-id"] in shown_truth)
    for v in evil_videos:
        assert f"{v} at rank {rank_of[v]}" + ("" if rank_of[v] <= TOP_K else " (not shown)") in page.notes
    # missing videos: listed on the page, in results.json and in what was printed
    missing = sorted(v for v in no_video if rank_of[v] <= TOP_K)
    assert missing and sorted(page.missing) == missing
    meta = json.loads((tmp_path / "out" / "results.json").read_text())
    assert sorted(m["video_id"] for m in meta["missing_videos"]) == missing
    assert all(m["reason"].endswith(f"{m['video_id']}.mp4: not found") for m in meta["missing_videos"])
    assert [r["video_id"] for r in meta["rows"]] == [r["video_id"] for r in top]
    assert f"no video for {len(missing)}: " in capsys.readouterr().out


def test_page_from_a_saved_index_and_without_its_feature_set(feature_set, tmp_path):
    """`--input out/index` finds the videos and captions through index/feature_set.json; an index
    without it still gets a page, every row a placeholder, and the page says why."""
    root, vocab, test_ids, no_video, _ = feature_set
    first, page1 = _predict(root, vocab, tmp_path / "a", query="a red man is running")
    assert (tmp_path / "a" / "index" / "feature_set.json").is_file()
    again, page2 = _predict(tmp_path / "a" / "index", vocab, tmp_path / "b", query="a red man is running")
    assert again["ranking"] == first["ranking"]
    assert [(r["data-video-id"], r["imgs"], r["captions"], r["placeholder"]) for r in page2.rows] == \
        [(r["data-video-id"], r["imgs"], r["captions"], r["placeholder"]) for r in page1.rows]
    assert sum(r["placeholder"] for r in page1.rows) == len(no_video & {r["data-video-id"] for r in page1.rows})
    (tmp_path / "a" / "index" / "feature_set.json").unlink()
    _, page3 = _predict(tmp_path / "a" / "index", vocab, tmp_path / "c", query="a red man is running")
    assert len(page3.rows) == TOP_K and all(r["placeholder"] and not r["imgs"] for r in page3.rows)
    assert sorted(page3.missing) == sorted(r["data-video-id"] for r in page3.rows)
    assert "feature_set.json not found" in page3.notes


def test_ground_truth_below_the_top_k_and_caption_match(feature_set, tmp_path):
    """Page writer alone on a given ranking: the ground truth ranked 3rd with top_k=2 is not a
    row but named with its rank; case, spacing and a final period do not prevent the match."""
    root, _, test_ids, no_video, _ = feature_set
    with_video = [v for v in test_ids if v not in no_video]
    ranked = [(with_video[0], 0.9), (with_video[1], 0.5), (with_video[2], 0.25)]
    captions = {with_video[0]: ["a dog"], with_video[1]: ["a cat"], with_video[2]: ["a car", "A Man  <i>runs</i>."]}
    rows = write_results_page(tmp_path, "a man <i>runs</i>", ranked, 2, video_dir=root / "videos" / "all", captions=captions)
    assert [r.video_id for r in rows] == with_video[:2] and not any(r.ground_truth for r in rows)
    page = _Page((tmp_path / "results.html").read_text())
    assert [r["data-video-id"] for r in page.rows] == with_video[:2] and not any("gt" in r["class"] for r in page.rows)
    assert f"{with_video[2]} at rank 3 (not shown)" in page.notes and page.missing == []
    assert json.loads((tmp_path / "results.json").read_text())["ground_truth"] == [{"video_id": with_video[2], "rank": 3}]
    rows = write_results_page(tmp_path, "a man <i>runs</i>", ranked, 3, video_dir=root / "videos" / "all", captions=captions)
    assert [r.matched_captions for r in rows] == [[], [], [1]]
    page = _Page((tmp_path / "results.html").read_text())
    assert page.rows[2]["marks"] == ["A Man  <i>runs</i>."] and "gt" in page.rows[2]["class"].split()


def test_unreadable_video_gets_a_placeholder_and_is_listed(tmp_path):
    """An mp4 that does not decode is not skipped silently: placeholder, reason, listed."""
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "video7.mp4").write_bytes(b"not an mp4 at all")
    rows = write_results_page(tmp_path / "out", "a dog", [("video7", 0.5)], 10, video_dir=videos, captions=None)
    assert rows[0].frames is None and rows[0].missing.startswith("unreadable (") and "video7.mp4" in rows[0].missing
    text = (tmp_path / "out" / "results.html").read_text()
    page = _Page(text)
    assert page.rows[0]["placeholder"] and page.missing == ["video7"] and page.rows[0]["captions"] == []
    assert '<td class="captions"><span class="note">captions not available</span></td>' in text
    assert json.loads((tmp_path / "out" / "results.json").read_text())["missing_videos"] == \
        [{"video_id": "video7", "reason": rows[0].missing}]
