"""The Penn Treebank as the book's ``dataset/ptb.py`` gives it.

``load_data('train' | 'val' | 'test', directory=None)`` returns ``(corpus, word_to_id,
id_to_word)``: the split's word ids (an int64 numpy array, each line's end as ``<eos>``), and
the vocabulary numbered in order of first appearance in the training split, as the book numbers
it. ``directory`` holds the three ``ptb.*.txt`` files (the book's ``dataset`` folder, say), or is
a data directory of the command line (with a ``ptb/`` folder); by default the command line's
(``$RNNLM_DATA``, else ``./data``), where PTB is downloaded the first time.
"""

import os

from . import _native


def load_data(data_type="train", directory=None):
    if not isinstance(data_type, str):
        raise TypeError(f"data_type must be a str, got {type(data_type).__name__}")
    if directory is not None:
        directory = os.fspath(directory)
        if not os.path.isdir(directory):
            raise OSError(f"directory {directory!r} does not exist")
    corpus, tokens = _native.ptb_split(data_type, directory)
    word_to_id = {word: i for i, word in enumerate(tokens)}
    id_to_word = dict(enumerate(tokens))
    return corpus, word_to_id, id_to_word
