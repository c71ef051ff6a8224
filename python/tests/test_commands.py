"""rnnlm.ptb, rnnlm.train and rnnlm.load: the command line's work from Python.

The Penn Treebank tests look for it as the command line does (``$RNNLM_DATA/ptb``); without
it they are skipped, unless ``RNNLM_REQUIRE_PTB=1`` (CI) makes that a failure.
"""

import math
import os

import numpy as np
import pytest

import book_numpy as book
import rnnlm


def ptb_dir():
    data = os.environ.get("RNNLM_DATA", "data")
    if os.path.exists(os.path.join(data, "ptb", "ptb.train.txt")):
        return os.path.join(data, "ptb")
    if os.environ.get("RNNLM_REQUIRE_PTB") == "1":
        pytest.fail("the Penn Treebank was not found in $RNNLM_DATA/ptb and RNNLM_REQUIRE_PTB=1")
    pytest.skip("the Penn Treebank was not found in $RNNLM_DATA/ptb")


def books_loader(directory, split):
    """The book's dataset/ptb.py, in a few lines."""
    words_of = lambda name: open(os.path.join(directory, f"ptb.{name}.txt")).read().replace("\n", "<eos>").strip().split()
    word_to_id = {}
    for word in words_of("train"):
        word_to_id.setdefault(word, len(word_to_id))
    return np.array([word_to_id[w] for w in words_of(split)]), word_to_id


@pytest.mark.parametrize("split,name", [("train", "train"), ("val", "valid"), ("test", "test")])
def test_ptb_load_data_gives_the_books_ids_and_vocabulary(split, name):
    directory = ptb_dir()
    corpus, word_to_id, id_to_word = rnnlm.ptb.load_data(split, directory)
    want, want_vocab = books_loader(directory, name)
    np.testing.assert_array_equal(corpus, want)
    assert corpus.dtype == np.int64
    assert word_to_id == want_vocab
    assert all(id_to_word[i] == w for w, i in word_to_id.items())
    # From the command line's data directory ($RNNLM_DATA, holding ptb/), the same.
    default, _, _ = rnnlm.ptb.load_data(split)
    np.testing.assert_array_equal(default, want)


def test_ptb_bad_arguments():
    with pytest.raises(ValueError, match="data_type"):
        rnnlm.ptb.load_data("training")
    with pytest.raises(TypeError, match="data_type"):
        rnnlm.ptb.load_data(1)
    with pytest.raises(OSError, match="does not exist"):
        rnnlm.ptb.load_data("train", "/nonexistent/ptb")


@pytest.fixture
def trained(tmp_path, monkeypatch):
    """A chapter model trained for two epochs by rnnlm.train, in a scratch directory."""
    directory = ptb_dir()
    monkeypatch.chdir(tmp_path)
    history = rnnlm.train("chapter", data=os.path.dirname(directory), epochs=2, save="m.safetensors", seed=3)
    return tmp_path / "m.safetensors", history


def test_train_runs_the_command_line_and_returns_its_history(trained):
    path, history = trained
    assert path.exists() and (path.parent / "m.png").exists()
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    assert history["epochs"][1]["train_ppl"] < history["epochs"][0]["train_ppl"]
    assert len(history["iterations"]) == 2 * (999 // 50)  # the chapter's windows per epoch
    assert history["checkpoint"] == "m.safetensors"


def test_a_loaded_checkpoint_scores_as_the_numpy_layers_compute(trained):
    safetensors = pytest.importorskip("safetensors.numpy")
    path, _ = trained
    model = rnnlm.load(path)
    assert model.info["vocab_size"] == 418 and model.info["cell"] == "rnn"
    tensors = safetensors.load_file(str(path))
    names = ["embed.W", "rnn.Wx", "rnn.Wh", "rnn.b", "affine.W", "affine.b"]
    twin = book.Model([tensors[n] for n in names], lstm=False, layers=1, tied=False)
    vocab = model.vocab
    eos = vocab.index("<eos>")
    sentences = ["the company said it", "a new", ""]
    scores = model.score(sentences, per_word=True)
    for sentence, (total, words) in zip(sentences, scores):
        ids = [eos] + [vocab.index(w) for w in sentence.split()] + [eos]
        twin.reset_state()
        logits = twin.predict(np.array([ids[:-1]]))[0]
        log_probs = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) - logits.max(1, keepdims=True)
        want = [log_probs[t, ids[t + 1]] / math.log(10) for t in range(len(ids) - 1)]
        assert [w for w, _ in words] == sentence.split() + ["<eos>"]
        np.testing.assert_allclose([p for _, p in words], want, rtol=1e-4, atol=1e-5)
        assert abs(total - sum(want)) < 1e-4
    assert model.score(sentences) == pytest.approx([s[0] for s in scores])
    # One stream: the state carried from line to line, every end token counted.
    text = "\n".join(sentences[:2])
    ids = [eos] + [vocab.index(w) for line in sentences[:2] for w in line.split() + ["<eos>"]]
    twin.reset_state()
    logits = twin.predict(np.array([ids[:-1]]))[0]
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    want = math.exp(-np.mean([log_probs[t, ids[t + 1]] for t in range(len(ids) - 1)]))
    assert model.perplexity(text) == pytest.approx(want, rel=1e-4)
    sample = model.generate("the company", 12, seed=5)
    assert sample.startswith("the company") and sample == model.generate("the company", 12, seed=5)


def test_bad_arguments_raise_with_the_command_lines_messages(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="--epochs"):
        rnnlm.train(epochs=0)
    with pytest.raises(ValueError, match="--cell"):
        rnnlm.train(cell="transformer")
    with pytest.raises(ValueError, match="--bogus"):
        rnnlm.train(bogus=1)
    with pytest.raises(TypeError, match="preset"):
        rnnlm.train(3)
    with pytest.raises(TypeError, match="epochs"):
        rnnlm.train(epochs={"a": 1})
    with pytest.raises(OSError):
        rnnlm.train(text=str(tmp_path / "missing.txt"), epochs=1)
    with pytest.raises(OSError, match="missing.safetensors"):
        rnnlm.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.safetensors"):
        rnnlm.load(tmp_path / "junk.safetensors")
    with pytest.raises(TypeError, match="path"):
        rnnlm.load(3)
    assert not any(tmp_path.glob("rnnlm.safetensors*")), "nothing written by a failed run"


def test_score_and_generate_refuse_bad_input(trained):
    path, _ = trained
    model = rnnlm.load(path)
    with pytest.raises(TypeError, match="sentences"):
        model.score(5)
    with pytest.raises(ValueError, match="start"):
        model.generate("zzzunknownword", 3)
    with pytest.raises(ValueError, match="start"):
        model.generate("", 3)
    with pytest.raises(ValueError, match="temperature"):
        model.generate("the", 3, temperature=-1.0)



def test_train_shows_its_epochs_where_stdout_is_not_the_processs(tmp_path, monkeypatch):
    """In a notebook, sys.stdout is the cell's: the epochs are printed there from the log."""
    import io

    directory = ptb_dir()
    monkeypatch.chdir(tmp_path)
    cell = io.StringIO()
    monkeypatch.setattr("sys.stdout", cell)
    history = rnnlm.train("chapter", data=os.path.dirname(directory), epochs=3, save=False)
    lines = [line for line in cell.getvalue().splitlines() if line.startswith("epoch")]
    assert len(lines) == 3 and lines[2].startswith("epoch    3 | train ppl")
    assert history["checkpoint"] is None and len(history["epochs"]) == 3

