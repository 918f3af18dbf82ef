"""The `mmzoo` command.

`mmzoo fit|validate|test|predict --model <id> --data <name> ...` is LightningCLI: the model's
constructor arguments (with the registry's defaults for that id) and the DataModule's are flags
and YAML keys, `--print_config` works. The zoo verbs `list`, `info`, `push`, `pull`, `convert`
and `demo` are plain argparse commands.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

LIGHTNING_VERBS = ("fit", "validate", "test", "predict")
ZOO_VERBS = ("list", "info", "push", "pull", "convert", "demo")


def _take_option(argv: list[str], name: str) -> tuple[str | None, list[str]]:
    """Remove `--name value` / `--name=value` (exactly that flag, not `--name.x`) from argv."""
    rest: list[str] = []
    value: str | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == f"--{name}":
            if i + 1 >= len(argv):
                raise SystemExit(f"mmzoo: --{name} needs a value")
            value = argv[i + 1]
            i += 2
            continue
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return value, rest


class UsageError(Exception):
    """A command-line mistake, reported as one line (see `_report_error`)."""


def _has_argument(parser: Any, key: str) -> bool:
    """Whether ``parser`` declares ``key`` (e.g. ``model.num_classes``), through its public API."""
    try:
        parser.get_default(key)
    except KeyError:  # jsonargparse's NSKeyError is a KeyError
        return False
    return True


def _check_flag_typos(argv: list[str], known: Sequence[str] = ("model", "data", "ckpt_path")) -> None:
    """`--modle x`: an unknown top-level flag that is close to one mmzoo takes -> one line."""
    import difflib

    for arg in argv:
        if not arg.startswith("--") or arg == "--":
            continue
        name = arg[2:].split("=", 1)[0]
        if "." in name or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        if close:
            raise UsageError(f"unknown flag --{name}; did you mean --{close[0]}?")


def _check_ckpt_model(ckpt_path: str | None, model_id: str) -> None:
    """`--model avel --ckpt_path <a cmcoatt-avsdn checkpoint>`: an error naming both ids."""
    from mmzoo.hub.checkpoint import checkpoint_model_id

    if not ckpt_path or not os.path.isfile(ckpt_path):
        return
    recorded = checkpoint_model_id(ckpt_path)
    if recorded is not None and recorded != model_id:
        raise UsageError(f"{ckpt_path} is a checkpoint of '{recorded}', not of --model '{model_id}'; "
                         f"pass --model {recorded} (or leave --model out)")


def _peek_option(argv: list[str], name: str) -> str | None:
    return _take_option(argv, name)[0]


def print_metrics(metrics: dict[str, float], title: str) -> None:
    """Metrics as a two-column table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(metrics):
        table.add_row(key, f"{metrics[key]:.4f}")
    Console().print(table)


def _checkpoint_dirs(trainer: Any) -> set[str]:
    """The folders the trainer's ModelCheckpoint callbacks write to, in any run under the same
    logger folder."""
    import glob
    import os

    from pytorch_lightning.callbacks import ModelCheckpoint

    dirs: set[str] = set()
    for cb in trainer.checkpoint_callbacks:
        if not isinstance(cb, ModelCheckpoint):
            continue
        if cb.dirpath is not None:
            dirs.add(str(cb.dirpath))
        elif trainer.loggers:
            logger = trainer.loggers[0]
            save_dir = logger.save_dir if logger.save_dir is not None else trainer.default_root_dir
            version = logger.version
            pattern = glob.escape(version) if isinstance(version, str) else "version_*"
            dirs.update(glob.glob(os.path.join(glob.escape(str(save_dir)), glob.escape(str(logger.name)),
                                               pattern, "checkpoints")))
        else:
            dirs.add(os.path.join(str(trainer.default_root_dir), "checkpoints"))
    return dirs


def _last_checkpoint(trainer: Any, model_id: str | None = None) -> str | None:
    """The newest `last*.ckpt` that the trainer's ModelCheckpoint callbacks wrote in any run under
    the same logger folder, of `model_id` (the id the checkpoint records) when given. Lightning's
    own `ckpt_path="last"` looks only in the folder of the run being started (a fresh
    `version_N`), so after a kill it finds nothing and starts from scratch."""
    import glob

    from mmzoo.hub.checkpoint import checkpoint_model_id

    found = [p for d in _checkpoint_dirs(trainer) for p in glob.glob(os.path.join(glob.escape(d), "last*.ckpt"))]
    if model_id is not None:
        found = [p for p in found if checkpoint_model_id(p) == model_id]
    return max(found, key=os.path.getmtime) if found else None


def _output_dirs(trainer: Any) -> tuple[str, str]:
    """(checkpoint folder, log folder) of a run about to start."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    log_dir = str(trainer.log_dir or trainer.default_root_dir)
    ckpt_dir = os.path.join(log_dir if trainer.loggers else str(trainer.default_root_dir), "checkpoints")
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.dirpath is not None:
            ckpt_dir = str(cb.dirpath)
    return ckpt_dir, log_dir


#: Lightning warnings that say nothing a `mmzoo` user can act on (shown with MMZOO_DEBUG=1).
_LIGHTNING_NOISE = (
    r"Starting from v1\.9\.0, `tensorboardX` has been removed",
    r"No seed found, seed set to",
    r"The dirpath has changed from",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"The number of training batches \(\d+\) is smaller than the logging interval",
)


def _quiet_lightning() -> None:
    """Lightning's info logs (device lines, tips) are for MMZOO_DEBUG=1 only."""
    import logging

    if not os.environ.get("MMZOO_DEBUG"):
        for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
        for message in _LIGHTNING_NOISE:
            warnings.filterwarnings("ignore", message=message)


def _merge_conflict(cli: Any, err: BaseException) -> UsageError:
    """Lightning's "Error while merging hparams" as one line naming both values and the flags."""
    import re

    match = re.search(r"keys (\[[^\]]*\])", str(err))
    keys = __import__("ast").literal_eval(match.group(1)) if match else []
    model_hp = dict(getattr(getattr(cli, "model", None), "hparams_initial", {}) or {})
    data_hp = dict(getattr(getattr(cli, "datamodule", None), "hparams_initial", {}) or {})
    parts = [f"--model.{k}={model_hp.get(k)!r} but --data.{k}={data_hp.get(k)!r}" for k in keys]
    flags = " and ".join(f"--model.{k} / --data.{k}" for k in keys)
    return UsageError(f"the model and the DataModule disagree: {'; '.join(parts) or err}; "
                      f"pass the same value to {flags or 'both'}")


def _datamodule_defaults(datamodule_class: type, spec: Any) -> dict[str, Any]:
    """``data.*`` parser defaults a DataModule takes from the model's InputConfig (its
    ``defaults_from_input`` classmethod, where it has one); explicit flags still win."""
    from_input = getattr(datamodule_class, "defaults_from_input", None)
    if from_input is None:
        return {}
    return {f"data.{k}": v for k, v in from_input(spec.input).items()}


def _lightning_main(subcommand: str, argv: list[str]) -> None:
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

    from mmzoo.data import get_datamodule
    from mmzoo.hub.checkpoint import checkpoint_model_id
    from mmzoo.registry import get_spec, split_name

    _check_flag_typos(argv)
    model_name, argv = _take_option(argv, "model")
    data_name, argv = _take_option(argv, "data")
    ckpt_arg = _peek_option(argv, "ckpt_path")
    if model_name is None and ckpt_arg and os.path.isfile(ckpt_arg):
        model_name = checkpoint_model_id(ckpt_arg)  # a checkpoint that records its id loads as that id
    if model_name is None or data_name is None:
        raise SystemExit(
            f"usage: mmzoo {subcommand} --model <id> --data <name> [--data.root DIR] [--trainer.* ...]\n"
            "  `mmzoo list` shows model ids; data names: "
            + ", ".join(__import__("mmzoo.data", fromlist=["all_datamodules"]).all_datamodules())
        )
    spec = get_spec(model_name)
    _, tag = split_name(model_name)
    _check_ckpt_model(ckpt_arg, spec.id)
    datamodule_class = get_datamodule(data_name)
    _quiet_lightning()
    holder: dict[str, Any] = {}

    class ZooCLI(LightningCLI):
        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            parser.set_defaults({f"model.{k}": v for k, v in spec.defaults.items()})
            data_defaults = _datamodule_defaults(datamodule_class, spec)
            if data_defaults:
                parser.set_defaults(data_defaults)
            parser.add_argument(
                "--pretrained",
                type=Optional[bool],
                default=None,
                help="Load the tag's published weights before running (default: true for "
                "validate/test/predict without --ckpt_path, false for fit).",
            )
            parser.add_argument("--results_json", type=Optional[str], default=None,
                                help="Where validate/test write their metrics as JSON.")
            for name in getattr(datamodule_class, "model_links", ()):
                # a model without the argument ignores the link (TimeCycle trains on Kinetics videos, not labels)
                if _has_argument(parser, f"model.{name}"):
                    parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")

        def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
            parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
            if "verbose" in self._subcommand_method_arguments.get(subcommand, ()):  # ours is the one table
                parser.set_defaults({"verbose": bool(os.environ.get("MMZOO_DEBUG"))})
            return parser

        def after_instantiate_classes(self) -> None:
            holder["cli"] = self
            self.model.zoo_id = spec.id
            cfg = self.config[self.subcommand]
            pretrained = cfg.get("pretrained")
            if pretrained is None:
                pretrained = self.subcommand != "fit" and not cfg.get("ckpt_path")
            if pretrained:
                from mmzoo.hub import load_pretrained_state, load_state_dict_strict

                state = load_pretrained_state(spec.id, tag)
                load_state_dict_strict(self.model, state, f"{spec.id}.{tag or spec.default_tag}")
            elif self.subcommand == "fit" and hasattr(self.model, "source_weights_loaded"):
                from mmzoo.transfer import load_source_weights  # --model transfer: the source's weights

                load_source_weights(self.model)

        def before_fit(self) -> None:
            from pytorch_lightning.callbacks import ModelCheckpoint

            cfg = self.config_init[self.subcommand]
            zero = self.trainer.is_global_zero
            if cfg.get("ckpt_path") == "last":
                found = _last_checkpoint(self.trainer, spec.id)
                if found is not None:
                    cfg.ckpt_path = found
                    if zero:
                        print(f"mmzoo fit: resuming from {found}", flush=True)
                else:
                    cfg.ckpt_path = None
                    if zero:
                        where = ", ".join(sorted(_checkpoint_dirs(self.trainer))) or str(self.trainer.default_root_dir)
                        print(f"mmzoo fit: --ckpt_path last: no last.ckpt of {spec.id} under {where}; "
                              "starting from scratch", file=sys.stderr, flush=True)
            if self.trainer.fast_dev_run:
                self.trainer.callbacks = [c for c in self.trainer.callbacks if not isinstance(c, ModelCheckpoint)]
                if zero:
                    print("mmzoo fit: --trainer.fast_dev_run: no checkpoints or logs are written", flush=True)
            elif zero:
                ckpt_dir, log_dir = _output_dirs(self.trainer)
                print(f"mmzoo fit: checkpoints -> {ckpt_dir}; logs -> {log_dir}", flush=True)

        def _report(self, subcommand: str) -> None:
            from mmzoo.hub.protocol import evaluation_protocol

            if not self.trainer.is_global_zero:  # DDP: the metrics are synced; one table, one JSON
                return
            metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if v.numel() == 1}
            print_metrics(metrics, f"mmzoo {subcommand}: {spec.id} on {data_name}")
            out = self.config[subcommand].get("results_json")
            path = Path(out) if out else Path(self.trainer.log_dir or ".") / f"results_{subcommand}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            result: dict[str, Any] = {"model": spec.id, "data": data_name, "metrics": metrics}
            # how the numbers were obtained (issue 13, mmzoo.hub.protocol)
            result["protocol"] = evaluation_protocol(self.datamodule, "test" if subcommand == "test" else "val")
            ranks = getattr(self.model, "last_eval_ranks", None)  # per-query 0-based ranks, if the model kept them
            if ranks:
                result["ranks"] = {k: list(v) for k, v in ranks.items()}
            path.write_text(json.dumps(result, indent=2))
            print(f"metrics written to {path}")

        def after_test(self) -> None:
            self._report("test")

        def after_validate(self) -> None:
            self._report("validate")

    # main() passes the argv it was given (less --model/--data) explicitly; LightningCLI would
    # otherwise warn on every console run that sys.argv is non-empty too.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    debug = bool(os.environ.get("MMZOO_DEBUG"))
    try:
        ZooCLI(
            model_class=spec.cls,
            datamodule_class=datamodule_class,
            args=[subcommand, *argv],
            trainer_defaults={"callbacks": [ModelCheckpoint(save_last=True)], "enable_model_summary": debug},
            save_config_kwargs={"overwrite": True},
        )
    except RuntimeError as err:
        if "Error while merging hparams" not in str(err):
            raise
        raise _merge_conflict(holder.get("cli"), err) from err


def _cmd_compare(args: argparse.Namespace) -> None:
    from pathlib import Path

    from mmzoo.catalog import load_index
    from mmzoo.compare import points, render_svg

    pts = points(load_index(), args.metric, args.pattern)
    width = max(len(i) for i, _, _ in pts)
    print(f"{'id':<{width}}  {'GFLOPs':>8}  {args.metric} (reported by the thesis)")
    for model_id, g, v in pts:
        print(f"{model_id:<{width}}  {g:>8.1f}  {v:g}")
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_svg(pts, args.metric), encoding="utf-8")
        print(f"wrote {out} ({len(pts)} ids)")


def _cmd_list(args: argparse.Namespace) -> None:
    from mmzoo.catalog import NOT_PUBLISHED, PUBLISHED, list_ids, load_index, weights_status

    names = list_ids(args.pattern, pretrained=args.pretrained)
    if args.json:
        print(json.dumps(names))
        return
    index = load_index()
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mmzoo models" + (" (pretrained tags)" if args.pretrained else ""),
                  caption=f"weights: {PUBLISHED} = mmzoo's on the Hub; converts on first use = the authors' "
                          f"file, downloaded and converted once; {NOT_PUBLISHED} = train with `mmzoo fit`")
    for col in ("id", "task", "tags (weights)"):
        table.add_column(col)
    for name in names:
        record = index[name.split(".")[0]]
        tags = ", ".join(f"{t} ({weights_status(w)})" for t, w in record["tags"].items())
        table.add_row(name, record["task"], tags or "-")
    Console().print(table)


def _cmd_info(args: argparse.Namespace) -> None:
    from mmzoo.catalog import info as catalog_info
    from mmzoo.catalog import weights_status

    info = catalog_info(args.id)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return
    gflops = "n/a" if info["gflops"] is None else f"{info['gflops']:.2f}"
    print(f"{info['id']}  ({info['family']}: {info['task']})")
    print(f"  paper:   {info['paper']}")
    print(f"  class:   {info['class']}")
    print(f"  params:  {info['params'] / 1e6:.2f} M")
    print(f"  GFLOPs:  {gflops} (multiply-adds, one example input)")
    print("  input:")
    for key, value in info["input"].items():
        print(f"    {key}: {json.dumps(value)}")
    print("  tags:")
    for tag, t in info["tags"].items():
        print(f"    .{tag}: {weights_status(t)}; {t['dataset']}; {json.dumps(t['metrics'])}")
    if info["reported"]:
        print("  reported in the paper:")
        for key, value in info["reported"].items():
            print(f"    {key}: {value}")


def _cmd_push(args: argparse.Namespace) -> None:
    from mmzoo.hub import push

    where = push(args.source, args.repo_id, hub=args.hub, token=args.token, private=args.private,
                 model_id=args.model, evaluation=args.results)
    print(f"pushed {args.source} to {where}")


def _cmd_pull(args: argparse.Namespace) -> None:
    from mmzoo.hub import pull

    print(pull(args.name, revision=args.revision))


def _cmd_convert(args: argparse.Namespace) -> None:
    from mmzoo.convert import convert

    out = convert(args.name, args.original, output_dir=args.output_dir, allow_pickle=True)
    print(f"converted weights written to {out}")


def _cmd_demo(args: argparse.Namespace) -> None:
    from mmzoo.demo import run_demo

    run_demo(root=args.root, epochs=args.epochs, seed=args.seed)


def _cmd_propose(args: argparse.Namespace) -> None:
    from mmzoo.data import get_datamodule
    from mmzoo.data.proposals import propose

    kwargs: dict[str, Any] = {}
    for item in args.data_arg or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--data-arg takes KEY=VALUE, got {item!r}")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    dm = get_datamodule(args.data)(root=args.root, **kwargs)
    out = propose(dm, args.output, splits=tuple(args.splits), proposals_per_frame=args.proposals_per_frame,
                  frame_step=args.frame_step, pretrained=not args.random_init, min_size=args.min_size,
                  max_size=args.max_size, batch_frames=args.batch_frames, device=args.device)  # fmt: skip
    print(f"proposals written to {out}")


def _cmd_objects(args: argparse.Namespace) -> None:
    """SAOA (thesis ch. 3): detect objects on the 2 fps frames around every EPIC segment and write
    the objects file that ``--data.objects`` reads."""
    from mmzoo.data.epic_kitchens import EpicKitchensDataModule
    from mmzoo.data.epic_objects import build_detector, extract_objects

    dm = EpicKitchensDataModule(root=args.root, version=args.version, source="frames", test_set=args.test_set)
    det = build_detector(num_classes=dm.num_nouns + 1, backbone=args.backbone, backbone_weights=args.backbone_weights,
                         checkpoint=args.checkpoint, min_size=args.min_size, max_size=args.max_size)
    out = extract_objects(dm, args.output, det.to(args.device), splits=tuple(args.splits), top_k=args.top_k,
                          video_fps=args.video_fps, batch_size=args.batch_size, half=args.half)
    print(f"objects written to {out}")


def _zoo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmzoo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("list", help="list model ids (or pretrained tags)")
    p.add_argument("pattern", nargs="?", default=None, help="glob, e.g. 'avslowfast*'")
    p.add_argument("--pretrained", action="store_true", help="list 'id.tag' for tags with weights")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_cmd_list)
    p = sub.add_parser("compare", help="a reported metric against GFLOPs for the zoo's ids (table, SVG chart)")
    p.add_argument("--metric", required=True, help="a reported metric name, e.g. k400_top1 (see `mmzoo info <id>`)")
    p.add_argument("--pattern", default=None, help="glob over ids, e.g. 'slowfast*'")
    p.add_argument("--output", default=None, help="write an accuracy-vs-GFLOPs chart (.svg)")
    p.set_defaults(fn=_cmd_compare)
    p = sub.add_parser("info", help="task, paper, params, GFLOPs, tags and reported metrics")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_cmd_info)
    p = sub.add_parser("push", help="publish a Lightning checkpoint or exported folder")
    p.add_argument("source", help="a .ckpt file or a folder with config.json + model.safetensors")
    p.add_argument("repo_id", help="owner/name")
    p.add_argument("--hub", choices=["local", "hf"], default="local",
                   help="local: the MMZOO_HUB directory; hf: the Hugging Face Hub")
    p.add_argument("--token", default=None)
    p.add_argument("--private", action="store_true")
    p.add_argument("--model", default=None, help="model id of a checkpoint when it cannot be inferred")
    p.add_argument("--results", default=None,
                   help="results JSON of `mmzoo test`: its metrics and evaluation protocol go into config.json and the card")
    p.set_defaults(fn=_cmd_push)
    p = sub.add_parser("pull", help="download a model's files into the cache and print the folder")
    p.add_argument("name", help="'id', 'id.tag', 'hf-hub:owner/repo' or a local hub repo id")
    p.add_argument("--revision", default=None)
    p.set_defaults(fn=_cmd_pull)
    p = sub.add_parser("convert", help="convert an original authors' checkpoint (reads pickle: trusted files only)")
    p.add_argument("name", help="'id.tag' whose registry record names the converter")
    p.add_argument("original", help="path of the original checkpoint file")
    p.add_argument("--output-dir", default=None)
    p.set_defaults(fn=_cmd_convert)
    p = sub.add_parser("demo", help="train, test, push and reload an AVE model on a synthetic dataset")
    p.add_argument("--root", default="mmzoo-demo", help="working folder for the dataset and logs")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the demo's setting)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=_cmd_demo)
    p = sub.add_parser("objects", help="detect objects around EPIC segments and write the SAOA objects file")
    p.add_argument("--root", "--data.root", dest="root", required=True, help="EPIC-Kitchens folder (--data.root), released JPEG frames")
    p.add_argument("--output", required=True, help="objects file to write (.h5; --data.objects reads it)")
    p.add_argument("--version", default="55", choices=["55", "100"])
    p.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val", "test"])
    p.add_argument("--test_set", default="val", help="what the 'test' split is (s1 / s2 for EPIC-55)")
    p.add_argument("--checkpoint", default=None, help="fine-tuned detector state dict (EPIC object detection)")
    p.add_argument("--backbone", default="resnext101_32x8d", help="torchvision ResNet of the FPN backbone")
    p.add_argument("--backbone_weights", default=None, help="torchvision weights name of the backbone (downloads)")
    p.add_argument("--top_k", type=int, default=5, help="boxes kept per frame (5)")
    p.add_argument("--video_fps", type=float, default=None, help="frame rate of the released frames (EPIC-55: 60)")
    p.add_argument("--min_size", type=int, default=800)
    p.add_argument("--max_size", type=int, default=1333)
    p.add_argument("--batch_size", type=int, default=4, help="frames per detector forward")
    p.add_argument("--half", action="store_true", help="store features as float16")
    p.add_argument("--device", default="cpu")
    p.set_defaults(fn=_cmd_objects)
    p = sub.add_parser("propose", help="run the COCO RPN over a dataset's videos and write a proposals file (STRG)")
    p.add_argument("--data", required=True, help="clip DataModule name: charades or something-something")
    p.add_argument("--root", "--data.root", dest="root", required=True, help="dataset folder (--data.root)")
    p.add_argument("--output", required=True, help="proposals file to write (.safetensors)")
    p.add_argument("--splits", nargs="+", default=["train", "val", "test"], choices=["train", "val", "test"])
    p.add_argument("--proposals_per_frame", type=int, default=50, help="boxes kept per frame (50 Charades, 10 SthSth)")
    p.add_argument("--frame_step", type=int, default=1, help="run the RPN on every n-th frame (clips use the nearest)")
    p.add_argument("--min_size", type=int, default=800, help="RPN input short side (torchvision COCO: 800)")
    p.add_argument("--max_size", type=int, default=1333, help="RPN input long-side cap (1333)")
    p.add_argument("--batch_frames", type=int, default=16, help="frames per RPN forward")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda:0")
    p.add_argument("--random_init", action="store_true", help="random RPN weights instead of COCO (tests only)")
    p.add_argument("--data-arg", action="append", metavar="KEY=VALUE",
                   help="more DataModule arguments (JSON values), e.g. --data-arg version=\"v2\"")
    p.set_defaults(fn=_cmd_propose)
    return parser


def _report_error(verb: str, err: BaseException) -> None:
    """One line on stderr for an error the user can act on (MMZOO_DEBUG=1 re-raises it instead)."""
    from mmzoo.errors import NoPublishedWeightsError

    if os.environ.get("MMZOO_DEBUG"):
        raise err
    hint = ""
    if isinstance(err, NoPublishedWeightsError) and verb in LIGHTNING_VERBS:
        hint = (" (hint: published weights are loaded when --pretrained is true, the default for "
                "validate/test/predict without --ckpt_path; pass --ckpt_path <file.ckpt> for your own "
                "weights, or --pretrained false for random ones)")
    message = " ".join(str(err).split())  # one line, whatever the exception's text holds
    print(f"mmzoo {verb}: error: {message}{hint}", file=sys.stderr)
    raise SystemExit(1) from None


def _run(argv: list[str]) -> Any:
    if argv[0] == "predict" and any(a == "--input" or a.startswith("--input=") for a in argv):
        from mmzoo.predict import main as predict_main

        predict_main(argv[1:])  # prints what it wrote where; the console exits 0
        return None
    if argv[0] in ("extract", "export"):  # issue 13: own argument parsers (mmzoo.extract / mmzoo.export)
        from importlib import import_module

        return import_module(f"mmzoo.{argv[0]}").main(argv[1:])
    if argv[0] in LIGHTNING_VERBS:
        return _lightning_main(argv[0], argv[1:])
    args = _zoo_parser().parse_args(argv)
    return args.fn(args)


def main(argv: Sequence[str] | None = None) -> Any:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("--version", "-V"):
        from mmzoo import __version__

        print(f"mmzoo {__version__}")
        return None
    if not argv or argv[0] in ("-h", "--help"):
        _zoo_parser().print_help()
        print("\nLightning verbs: mmzoo {fit,validate,test,predict} --model <id> --data <name> [--help]")
        print("File prediction: mmzoo predict --model <id> --input PATH [--query TEXT] [--output_dir DIR] "
              "[--predictor.KEY VALUE] (options per family: mmzoo predict --input X --help)")
        print("Features:        mmzoo extract --model <id> --data <name> --data.root DIR --output OUT [--layer L]")
        print("Export:          mmzoo export --model <id> --format {torchscript,onnx,exported-program} --output F")
        return None
    from mmzoo.errors import MmzooError

    try:
        return _run(argv)
    except (MmzooError, UsageError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as err:
        _report_error(argv[0], err)


if __name__ == "__main__":
    main()
