"""How training batches reach the device: resident data, pinned prefetching, or plain gathering.

A hand-written GPU loop on a small dataset moves the tensors to the GPU once and indexes them
there. ``fit`` does the same when the training data fits in a share of the device's free
memory (``resident``). When it does not, a background thread gathers the next batches on the
CPU into pinned (page-locked) memory, a few ahead, so that each copy to the GPU is asynchronous
and overlaps the step before it (``prefetch``). On the CPU there is nothing to overlap with (the
gather is part of the computation), so batches are gathered in the loop (``plain``).

The mode changes where a batch is assembled, never which examples it holds or in what order
(the sampler draws positions on the CPU from the same generator in every mode), so the three
train the same model; ``TrainConfig.loading`` picks one, ``auto`` chooses as above.

Channels-last memory format (``TrainConfig.channels_last``) is applied here too, to each batch
of images once it is on the device; the model is converted by ``fit``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from stalwart.data.core import Batch, GroupedDataset
from stalwart.errors import ConfigError

MODES = ("auto", "resident", "prefetch", "plain")
RESIDENT_SHARE = 0.25
"""``auto`` keeps the training data on the device when it takes at most this share of the
device's free memory (the rest is for the model, its activations and the optimiser)."""
PREFETCH_DEPTH = 3
"""Batches the prefetching thread prepares ahead of the step that uses them."""


def dataset_bytes(dataset: GroupedDataset) -> int:
    """Bytes of the dataset's tensors (inputs, labels, groups, indices)."""
    tensors = (dataset.x, dataset.y, dataset.group, dataset.index)
    return sum(t.numel() * t.element_size() for t in tensors)


def choose_loading(requested: str, device: torch.device, nbytes: int, free: int | None) -> str:
    """The loading mode for data of ``nbytes`` on ``device`` with ``free`` bytes available.

    ``auto``: ``plain`` on the CPU; on an accelerator, ``resident`` when the data takes at most
    ``RESIDENT_SHARE`` of ``free`` (unknown free memory: ``prefetch``), else ``prefetch``.

    Raises:
        ConfigError: an unknown mode.
    """
    if requested not in MODES:
        raise ConfigError(f"loading must be one of {list(MODES)}; got {requested!r}")
    if requested != "auto":
        return requested
    if device.type == "cpu":
        return "plain"
    if free is not None and nbytes <= RESIDENT_SHARE * free:
        return "resident"
    return "prefetch"


def free_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA device (None elsewhere: unknown)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)


def wants_channels_last(
    requested: bool | None, model: nn.Module, example: Tensor, device: torch.device
) -> bool:
    """Whether to train in channels-last format.

    ``None`` (auto): on CUDA, for image batches (4-D) and a model with 2-D convolutions, where
    cuDNN's channels-last kernels are faster under bf16; never on the CPU by default.
    """
    if requested is not None:
        return requested and example.dim() == 3  # one example: (channels, height, width)
    has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    return device.type == "cuda" and has_conv and example.dim() == 3


class Feeder:
    """Turns positions of the training data into batches on the device.

    Args:
        dataset: the training data (on the CPU).
        device: where the model computes.
        mode: ``resident``, ``prefetch`` or ``plain`` (see the module; ``choose_loading``).
        channels_last: convert image batches to channels-last format on the device.
    """

    def __init__(
        self, dataset: GroupedDataset, device: torch.device, mode: str, channels_last: bool
    ) -> None:
        if mode not in MODES[1:]:
            raise ConfigError(f"a feeder's mode is one of {list(MODES[1:])}; got {mode!r}")
        self.device, self.mode, self.channels_last = device, mode, channels_last
        self.source = dataset.to(device) if mode == "resident" else dataset

    def feed(
        self, items: Iterable[tuple[Tensor | None, Any]]
    ) -> Iterator[tuple[Batch | None, Any]]:
        """``(positions, tag)`` pairs in, ``(batch on the device, tag)`` out, in order.

        A ``None`` (or empty) ``positions`` gives a ``None`` batch (a rank with no share of a
        batch still takes the step).
        """
        if self.mode == "prefetch":
            yield from self._prefetched(items)
            return
        for positions, tag in items:
            if positions is None or len(positions) == 0:
                yield None, tag
            elif self.mode == "resident":
                yield self._ready(self.source.take(positions.to(self.device))), tag
            else:
                yield self._ready(self.source.take(positions).to(self.device)), tag

    def _ready(self, batch: Batch) -> Batch:
        if self.channels_last and batch.x.dim() == 4:
            batch = batch._replace(x=batch.x.contiguous(memory_format=torch.channels_last))
        return batch

    def _prefetched(self, items: Iterable[tuple[Tensor | None, Any]]) -> Iterator:
        """Gather (and pin) in a background thread; copy without blocking in this one."""
        pin = self.device.type == "cuda"
        ahead: queue.Queue = queue.Queue(maxsize=PREFETCH_DEPTH)
        stop = threading.Event()
        done = object()

        def gather() -> None:
            try:
                for positions, tag in items:
                    if stop.is_set():
                        return
                    batch = None
                    if positions is not None and len(positions):
                        batch = self.source.take(positions)
                        if pin:
                            batch = Batch(*(t.pin_memory() for t in batch))
                    ahead.put((batch, tag))
                ahead.put((done, None))
            except BaseException as error:  # noqa: BLE001  (re-raised in the training thread)
                ahead.put((error, None))

        worker = threading.Thread(target=gather, name="stalwart-prefetch", daemon=True)
        worker.start()
        try:
            while True:
                batch, tag = ahead.get()
                if batch is done:
                    return
                if isinstance(batch, BaseException):
                    raise batch
                if batch is not None:
                    batch = self._ready(batch.to(self.device, non_blocking=pin))
                yield batch, tag
        finally:
            stop.set()
            while worker.is_alive():  # unblock a thread waiting on a full queue, then let it end
                try:
                    ahead.get_nowait()
                except queue.Empty:
                    worker.join(timeout=0.01)
