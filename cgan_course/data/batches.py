"""Batches without a DataLoader: the whole split sits on the device as uint8 and each epoch is one
seeded permutation and one flip mask; ``CIFAR10Tensors`` wraps the tensors as a Dataset for
code that wants one.
"""
from __future__ import annotations

from typing import Iterator

import torch

from ..errors import CourseError
from .transforms import apply_hflip, hflip_mask, to_unit_range


class DeviceBatches:
    """Shuffled mini-batches of a uint8 dataset kept on ``device``; scaling and flips done there.

    This is the course's training input pipeline: one host-to-device copy of the dataset (180 MB
    for CIFAR-10), then each batch is an index, a cast and a flip, with no worker processes.
    Iterating yields ``(x [B, 3, H, W] float in [-1, 1], y [B] int64)`` forever; the order is a
    function of ``seed`` and the epoch, and ``state_dict`` allows exact resumption.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 device: torch.device | str = "cpu", hflip: bool = True, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise CourseError(f"images must be uint8 [N, C, H, W], got {images.dtype} {list(images.shape)}")
        if batch_size > images.shape[0] // world_size:
            raise CourseError(f"batch_size {batch_size} is larger than the {images.shape[0] // world_size} "
                             "images per process; lower batch_size.")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size, self.hflip, self.seed = batch_size, hflip, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.position = 0, 0
        self._new_epoch()

    def _new_epoch(self) -> None:
        """Draw the epoch's order and flip masks on the CPU with seeded generators (the same numbers
        on every device, so a resume is exact), then move them to the device in one copy each:
        no host-to-device copy, and so no sync, per batch."""
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.images.shape[0], generator=g)[self.rank::self.world_size]  # this rank's shard
        self._order = order.to(self.device)
        if self.hflip:  # batch i's mask is drawn as it always was: a generator seeded by (epoch, position)
            ends = range(self.batch_size, len(order) - len(order) % self.batch_size + 1, self.batch_size)
            masks = [hflip_mask(self.batch_size, self._flip_generator(end)) for end in ends]
            self._flips = torch.stack(masks).to(self.device) if masks else None  # (batches, B) bool

    def _flip_generator(self, position: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 7919 + self.epoch * 1_000_003 + position)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.position + self.batch_size > len(self._order):  # drop the ragged tail
            self.epoch, self.position = self.epoch + 1, 0
            self._new_epoch()
        idx = self._order[self.position:self.position + self.batch_size]  # (B,), already on the device
        batch = self.position // self.batch_size
        self.position += self.batch_size
        x = to_unit_range(self.images[idx])  # (B, C, H, W) in [-1, 1]
        if self.hflip:
            x = apply_hflip(x, self._flips[batch])
        return x, self.labels[idx]

    @property
    def batches_per_epoch(self) -> int:
        return len(self._order) // self.batch_size

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch, self.position = state["seed"], state["epoch"], state["position"]
        self._new_epoch()


class CIFAR10Tensors(torch.utils.data.Dataset):
    """A plain map-style Dataset over the uint8 tensors, for people who want a DataLoader.

    Items are ``(x [3, H, W] float in [-1, 1], y int)``; pass ``transform`` for anything else.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):
        x = self.images[i]
        x = self.transform(x) if self.transform is not None else to_unit_range(x)
        return x, int(self.labels[i])
