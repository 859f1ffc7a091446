"""Batches without tf.data: the decoded arrays fed to Keras as a `keras.utils.PyDataset`.

JAX and PyTorch runs train from here, so they need no TensorFlow. What tf.data does for
the TensorFlow path, done with NumPy: uint8 batches of `batch_size` (the last one short),
validation and test in file order, train reshuffled on every pass by a generator seeded
with the run's seed, so two runs with one seed see one sequence of orders. The orders are
not tf.data's (its shuffle cannot be reproduced without TensorFlow), so data order is one
more way backends differ (README "Keras backends").

A pass draws its order at its first batch: Keras on JAX and PyTorch begins one pass to
build the model before the first epoch, and the orders stay the same sequence whether or
not a pass is begun without a batch being read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from catsdogs.backend import keras_module

_CLASS: Any = None


def _batches_class():
    """The PyDataset subclass, made on first use (Keras is imported only then)."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    keras = keras_module()

    class ArrayBatches(keras.utils.PyDataset):
        """(uint8 images, int32 labels) batches of arrays held in memory."""

        def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int,
                     shuffle_seed: int | None) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.images, self.labels, self.batch_size = images, labels, batch_size
            self.shuffle_seed = shuffle_seed
            self._rng = None if shuffle_seed is None else np.random.default_rng(shuffle_seed)
            self._order: np.ndarray | None = None
            self.passes = 0  # orders drawn so far (for tests and the reader of this code)
            self.max_batches: int | None = None  # set by `take`
            self.endless = False  # set by `repeat`
            self._pass_number = 0

        def __len__(self) -> int:
            batches = -(-len(self.labels) // self.batch_size)
            return batches if self.max_batches is None else min(batches, self.max_batches)

        @property
        def num_batches(self) -> int | None:
            """Keras' question: how many batches a pass has (None: it never ends)."""
            return None if self.endless else len(self)

        def repeat(self):
            """Every pass again without end, a new seeded order each (tf.data's `repeat`
            after its reshuffling shuffle): the A/B tool's bursts of any length."""
            again = type(self)(self.images, self.labels, self.batch_size, self.shuffle_seed)
            again.endless = True
            return again

        def take(self, count: int):
            """The first `count` batches of every pass, as tf.data's `take` (the speed
            benchmark's short runs); the orders drawn are those of the full dataset."""
            taken = type(self)(self.images, self.labels, self.batch_size, self.shuffle_seed)
            taken.max_batches = count
            return taken

        def on_epoch_begin(self) -> None:
            self._order = None

        def _current_order(self) -> np.ndarray:
            if self._order is None:
                self._order = (np.arange(len(self.labels)) if self._rng is None
                               else self._rng.permutation(len(self.labels)))
                self.passes += 1
            return self._order

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            if self.endless:  # batch `index` of the endless sequence: pass, then batch
                pass_number, index = divmod(index, len(self))
                if pass_number != self._pass_number:
                    self._order, self._pass_number = None, pass_number
            elif not 0 <= index < len(self):
                raise IndexError(index)
            chosen = self._current_order()[index * self.batch_size:(index + 1) * self.batch_size]
            return self.images[chosen], self.labels[chosen]

        def __iter__(self):
            """One pass, as Keras reads it: a new order, then every batch."""
            self.on_epoch_begin()
            return (self[index] for index in range(len(self)))

    _CLASS = ArrayBatches
    return _CLASS


def array_batches(images: np.ndarray, labels: list[int], *, batch_size: int,
                  shuffle_seed: int | None):
    """A PyDataset of `images` (uint8, N x H x W x 3) and `labels`: shuffled every pass
    with `shuffle_seed`, or in order when it is None."""
    return _batches_class()(images, np.asarray(labels, np.int32), batch_size, shuffle_seed)
