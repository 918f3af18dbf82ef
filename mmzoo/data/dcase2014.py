"""DCASE acoustic scene classification ("DCASE2014" in the AVTS and SoundNet tables) as a DataModule.

The set the AVTS audio table (seed 004, digest part B.2) and SoundNet call DCASE2014 is the scene
classification task of the IEEE AASP challenge "Detection and Classification of Acoustic Scenes and
Events" (Giannoulis, Benetos, Stowell, Plumbley; challenge 2013, results 2014/15): 10 scenes
(bus, busystreet, office, openairmarket, park, quietstreet, restaurant, supermarket, tube,
tubestation), 10 binaural 30-s recordings per scene in the public development set and as many in
the private (later released) test set; accuracy, 5-fold cross-validation on the development set.

Layout read (``root``; the archives as distributed, extracted side by side)::

    root/scenes_stereo/<scene><NN>.wav            development set (scenes_stereo.zip), 44.1 kHz stereo
    root/scenes_stereo_testset/<scene><NN>.wav    the challenge test set (scenes_stereo_testset.zip), optional
    root/evaluation_setup/fold<k>_train.txt       optional fold lists in the DCASE toolbox format:
    root/evaluation_setup/fold<k>_evaluate.txt    "scenes_stereo/bus01.wav<TAB>bus" (path relative to root)

The scene is the file name without its two-digit number. The archive ships no fold lists
([SILENT] in the seed and in the dataset): ``folds="stratified"`` (default when no lists are
present) puts the ``i``-th recording of each scene (in name order) into fold ``i mod 5 + 1``, i.e.
2 recordings per scene and fold, the stratified 5-fold split of the challenge's cross-validation;
``folds="lists"`` reads ``evaluation_setup/fold<k>_{train,evaluate}.txt`` (as the DCASE 2016
baseline toolbox writes them for this set), so a published split can be reproduced exactly.
``protocol="challenge"`` trains on the whole development set and tests on ``scenes_stereo_testset``.

Errors: a WAV whose name is not ``<scene><NN>.wav`` (:class:`~mmzoo.data.video_dataset.LayoutError`
naming it), a list line that is not ``<path><TAB><scene>`` or whose scene disagrees with its file
name (:class:`~mmzoo.data.video_dataset.AnnotationError` naming file and line), a recording in
both the train and the test list of a fold. Listed files that are missing are reported
(``missing_videos``).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from mmzoo.data.audio_clips import AudioFileDataModule, AudioRecord
from mmzoo.data.paths import find_path, flag, report_missing
from mmzoo.data.registry import register_datamodule
from mmzoo.data.video_dataset import AnnotationError, LayoutError

__all__ = ["DCASE_SCENES", "DCASE2014DataModule", "read_fold_list", "scene_of", "stratified_fold"]

DCASE_SCENES = ("bus", "busystreet", "office", "openairmarket", "park", "quietstreet", "restaurant", "supermarket",
                "tube", "tubestation")
_NAME = re.compile(r"^(?P<scene>[A-Za-z_]+)(?P<num>\d{2})\.wav$")


def scene_of(path: str | Path) -> str:
    """The scene of ``<scene><NN>.wav``; :class:`LayoutError` naming the file otherwise."""
    m = _NAME.match(Path(path).name)
    if m is None:
        raise LayoutError(f"{path}: DCASE scene file names are <scene><NN>.wav (e.g. bus01.wav)")
    return m.group("scene")


def stratified_fold(names: list[str], num_folds: int = 5) -> dict[str, int]:
    """File name -> fold (1-based): the ``i``-th file of each scene in name order goes to fold
    ``i mod num_folds + 1``."""
    by_scene: dict[str, list[str]] = {}
    for n in sorted(names):
        by_scene.setdefault(scene_of(n), []).append(n)
    return {n: i % num_folds + 1 for files in by_scene.values() for i, n in enumerate(files)}


def read_fold_list(path: str | Path) -> list[tuple[int, str, str]]:
    """A ``fold<k>_train.txt`` / ``fold<k>_evaluate.txt`` -> ``(line, relative path, scene)``."""
    path = Path(path)
    out, seen = [], {}
    for i, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        parts = raw.rstrip("\r\n").split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise AnnotationError(path, i, f"expected '<audio path><TAB><scene>', got {raw!r}")
        rel, scene = parts[0].strip().replace("\\", "/"), parts[1].strip()
        m = _NAME.match(Path(rel).name)
        if m is None:
            raise AnnotationError(path, i, f"{rel!r} is not a <scene><NN>.wav file")
        if m.group("scene") != scene:
            raise AnnotationError(path, i, f"scene {scene!r} disagrees with the file name {Path(rel).name!r}")
        if rel in seen:
            raise AnnotationError(path, i, f"{rel} already listed on line {seen[rel]}")
        seen[rel] = i
        out.append((i, rel, scene))
    if not out:
        raise AnnotationError(path, None, "no recordings listed")
    return out


@register_datamodule("dcase2014")
class DCASE2014DataModule(AudioFileDataModule):
    """DCASE scene classification, fold ``fold`` held out (module docstring for layout and folds).

    Args (besides those of :class:`~mmzoo.data.audio_clips.AudioFileDataModule`; ``num_windows``
    defaults to 30, the 1-s windows of a 30-s recording):
        protocol: ``"cv"`` (5-fold cross-validation on the development set) or ``"challenge"``
            (train on the development set, test on ``test_dir``).
        folds: ``"auto"`` (the lists when ``evaluation_setup/`` has them, else stratified),
            ``"lists"`` or ``"stratified"``.
        dev_dir: development WAV folder (default ``root/scenes_stereo``).
        test_dir: challenge test WAV folder (default ``root/scenes_stereo_testset``).
        setup_dir: fold-list folder (default ``root/evaluation_setup``).
    """

    default_num_windows: ClassVar[int] = 30

    def __init__(
        self,
        root: str,
        protocol: Literal["cv", "challenge"] = "cv",
        folds: Literal["auto", "lists", "stratified"] = "auto",
        dev_dir: str | None = None,
        test_dir: str | None = None,
        setup_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(root=root, **kwargs)
        if protocol not in ("cv", "challenge"):
            raise ValueError(f"{flag('protocol')} must be 'cv' or 'challenge', got {protocol!r}")
        if folds not in ("auto", "lists", "stratified"):
            raise ValueError(f"{flag('folds')} must be auto/lists/stratified, got {folds!r}")
        if not 1 <= self.fold <= 5:
            raise ValueError(f"{flag('fold')} must be 1..5, got {self.fold}")
        self.protocol, self.folds = protocol, folds
        self._dev_arg, self._test_arg, self._setup_arg = dev_dir, test_dir, setup_dir
        self.dev_dir: Path | None = None

    def _validate_layout(self) -> None:
        if self.dev_dir is not None:
            return
        if not self.root.is_dir():
            raise LayoutError(f"DCASE root not found: {self.root} ({flag('root')})")
        self.dev_dir = find_path("dev_dir", self._dev_arg, self.root, defaults=("scenes_stereo",), kind="dir",
                                 what="DCASE development folder (scenes_stereo)")
        self.dev_files = sorted(p.name for p in self.dev_dir.glob("*.wav"))
        if not self.dev_files:
            raise LayoutError(f"no .wav file in {self.dev_dir}")
        scenes = {scene_of(self.dev_dir / n) for n in self.dev_files}
        self.classes = sorted(scenes)
        self.test_dir = None
        if self.protocol == "challenge":
            self.test_dir = find_path("test_dir", self._test_arg, self.root, defaults=("scenes_stereo_testset",),
                                      kind="dir", what="DCASE challenge test folder (scenes_stereo_testset)")
        setup = Path(self._setup_arg) if self._setup_arg else self.root / "evaluation_setup"
        if not setup.is_absolute() and self._setup_arg and not setup.is_dir():
            setup = self.root / self._setup_arg
        has_lists = (setup / f"fold{self.fold}_train.txt").is_file()
        if self.folds == "lists" and not has_lists:
            raise LayoutError(f"fold list not found: {setup / f'fold{self.fold}_train.txt'} ({flag('setup_dir')})")
        self.use_lists = self.protocol == "cv" and (self.folds == "lists" or (self.folds == "auto" and has_lists))
        self.setup_dir = setup

    def _record(self, path: Path, meta: dict[str, Any]) -> AudioRecord:
        scene = scene_of(path)
        if scene not in self.classes:
            raise LayoutError(f"{path}: scene {scene!r} is not among the development scenes {self.classes}")
        return AudioRecord(str(path), self.classes.index(scene), dict(meta, video_id=path.name))

    def _records(self, split: str) -> list[AudioRecord]:
        missing: list[str] = []
        if self.protocol == "challenge":
            folder = self.dev_dir if split == "train" else self.test_dir
            records = [self._record(folder / n, {"fold": 0}) for n in sorted(p.name for p in folder.glob("*.wav"))]
        elif self.use_lists:
            lst = self.setup_dir / f"fold{self.fold}_{'train' if split == 'train' else 'evaluate'}.txt"
            if not lst.is_file():
                raise LayoutError(f"fold list not found: {lst}")
            rows = read_fold_list(lst)
            other = self.setup_dir / f"fold{self.fold}_{'evaluate' if split == 'train' else 'train'}.txt"
            if other.is_file():
                where = {rel: line for line, rel, _ in read_fold_list(other)}
                for line, rel, _ in rows:
                    if rel in where:
                        raise AnnotationError(lst, line, f"{rel} is also in {other.name} (line {where[rel]})")
            records = []
            for line, rel, _ in rows:
                p = self.root / rel
                if not p.is_file():
                    missing.append(f"{lst}:{line}: {p}")
                    continue
                records.append(self._record(p, {"list": str(lst), "line": line, "fold": self.fold}))
        else:
            folds = stratified_fold(self.dev_files)
            keep = [n for n in self.dev_files if (folds[n] == self.fold) == (split == "test")]
            records = [self._record(self.dev_dir / n, {"fold": folds[n]}) for n in keep]
        report_missing(self, missing, f"DCASE fold {self.fold} {split}", split, "listed")
        if not records:
            raise LayoutError(f"no {split} recording for fold {self.fold} ({self.dev_dir})")
        return records
