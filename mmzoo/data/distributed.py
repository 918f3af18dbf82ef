"""Exact evaluation under DDP: every evaluation sample is seen exactly once, on one process.

Lightning shards an evaluation loader with ``torch.utils.data.DistributedSampler``, which pads
the index list by repeating its first samples until every process has the same number (499
videos on 8 GPUs become 504, and the repeated ones count twice in every metric). mmzoo's
DataModules (:class:`~mmzoo.data.base.ZooDataModule`) shard their validation / test / predict
loaders themselves instead, with :func:`exact_eval_sampler`:

* no custom sampler: Lightning's ``UnrepeatedDistributedSampler`` (rank ``r`` takes samples
  ``r, r + W, r + 2W, ...``; the last ranks may get one sample fewer, nothing is repeated);
* a custom non-distributed sampler (an order the DataModule chose): Lightning's
  ``UnrepeatedDistributedSamplerWrapper`` around it (the same unpadded striding of its order);
* a sampler that already shards itself (a ``DistributedSampler`` subclass such as VID's
  ``SnippetShardSampler``, which keeps whole snippets per rank for Seq-NMS): kept as it is.

Because the loader already holds a ``DistributedSampler``, Lightning keeps it as it is. Ranks
may then run a different number of evaluation batches, which is safe because nothing
communicates per step: metrics (``torchmetrics`` states with ``dist_reduce_fx="cat"``) and
epoch-level ``self.log(..., sync_dist=True)`` values are gathered once, at the end of the epoch,
on every rank. Views of one video (K clips x 3 crops) may land on different ranks; the metrics of
:mod:`mmzoo.metrics` aggregate them by ``video_index`` after the gather, so the result equals
that of one process (``tests/test_ddp_eval.py`` checks this through ``mmzoo test`` on 2 CPU
processes).

Not covered: a rank that gets no sample at all (fewer evaluation samples than processes);
:func:`exact_eval_sampler` refuses that case with a clear error instead of hanging in the
gather. Nor can sharding make exact an evaluation that builds its inputs from the other samples
of a batch, since it changes which samples share a batch (as does a different batch size on one
process): the sync accuracy of AVTS and Multisensory and the correspondence accuracy of L3-Net
(negatives taken from the batch), and TimeCycle's loss on unlabelled clips (patches drawn per
batch position). Every other evaluation of the zoo is checked equal on 1 and 2 processes.
"""
from __future__ import annotations

from torch.utils.data import Dataset, DistributedSampler, Sampler

from mmzoo.errors import DataError

__all__ = ["exact_eval_sampler"]


def exact_eval_sampler(dataset: Dataset, sampler: Sampler | None, num_replicas: int, rank: int) -> Sampler:
    """The unpadded sharding of an evaluation loader for process ``rank`` of ``num_replicas``
    (module docstring); ``sampler`` is the DataModule's own choice (``None``: in order)."""
    from pytorch_lightning.overrides.distributed import (
        UnrepeatedDistributedSampler,
        UnrepeatedDistributedSamplerWrapper,
    )

    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"rank {rank} outside [0, {num_replicas})")
    if isinstance(sampler, DistributedSampler):
        return sampler
    n = len(sampler) if sampler is not None else len(dataset)  # type: ignore[arg-type]
    if n < num_replicas:
        raise DataError(
            f"{n} evaluation sample(s) for {num_replicas} processes: every process needs at least one "
            f"(evaluate on fewer devices, e.g. --trainer.devices {max(n, 1)})")
    if sampler is None:
        return UnrepeatedDistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
    return UnrepeatedDistributedSamplerWrapper(sampler, num_replicas=num_replicas, rank=rank, shuffle=False)
