"""rnnlm: recurrent-network language models on fast CPU kernels.

- ``SimpleRnnlm``, ``Rnnlm``, ``BetterRnnlm``: the book's model classes, drop-in;
- ``rnnlm.ptb.load_data``: the Penn Treebank as the book's loader gives it;
- ``rnnlm.load``: a checkpoint of the ``rnnlm`` command line, to score text and generate;
- ``rnnlm.train``: the command line's training runs, with its options and presets;
- ``set_num_threads``: the threads the kernels use.
"""

from . import ptb
from ._native import get_num_threads, set_num_threads, simd_level
from .book import BetterRnnlm, Rnnlm, SimpleRnnlm
from .runs import load, train

__all__ = [
    "SimpleRnnlm",
    "Rnnlm",
    "BetterRnnlm",
    "load",
    "train",
    "ptb",
    "set_num_threads",
    "get_num_threads",
    "simd_level",
]
