"""What the command line does, from Python: ``train`` runs ``rnnlm train``, ``load`` reads its
checkpoints to score text and generate."""

import io
import json
import os
import sys
import tempfile
import threading

from . import _native


def load(path):
    """A checkpoint of ``rnnlm train``: a model with ``.perplexity(text)``,
    ``.score(sentences, per_word=False)``, ``.generate(start, n, seed=1, temperature=1.0)``,
    ``.vocab`` and ``.info``. OSError if the file cannot be read, ValueError if it is not a
    checkpoint or has no vocabulary, TypeError if ``path`` is not a path."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a path, got {type(path).__name__}")
    return _native.load(os.fspath(path))


def _flag(name, value):
    """The command line's arguments for one keyword: ``epochs=3`` is ``--epochs 3``,
    ``tie=True`` is ``--tie``, ``keep_best=False`` is ``--no-keep-best``, a list is
    comma-separated."""
    flag = "--" + name.replace("_", "-")
    if value is None:
        return []
    if value is True:
        return [flag]
    if value is False:
        return ["--no-" + name.replace("_", "-")] if name in ("keep_best", "save") else []
    if isinstance(value, (list, tuple)):
        return [flag, ",".join(str(v) for v in value)]
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    return [flag, str(value)]


def train(preset=None, *, data=None, log=None, **options):
    """Trains as ``rnnlm train`` does and returns its history.

    ``preset`` is one of the command line's presets (``chapter``, ``ptb``, ``ch06``,
    ``ch06-better``, ``ptb-lstm``); every keyword is the flag of the same name (``epochs=3``,
    ``cell="lstm"``, ``cutoffs=[2000, 6000]``, ``tie=True``, ``keep_best=False``,
    ``save="model.safetensors"``, ``save=False`` for ``--no-save``, ``resume=...``). ``data`` is
    the data directory. Progress is printed as the command line prints it (one line per epoch).

    Returns a dict: ``epochs`` (one dict per epoch: ``epoch``, ``train_ppl``, ``valid_ppl``,
    ``tokens_per_sec``, ``elapsed_sec``, ``next_lr``), ``iterations`` (``iter``, ``epoch``,
    ``loss``, ``lr``), ``events`` (rate changes, roll-backs, recoveries) and ``checkpoint``
    (its path, or None). Bad options raise ValueError or TypeError with the command line's
    message, files that cannot be read or written OSError; Ctrl-C stops after the current
    window with a save point and raises KeyboardInterrupt (a second one ends the process, as
    it ends the command line).
    """
    argv = ["rnnlm"]
    if data is not None:
        argv += ["--data", os.fspath(data)]
    argv.append("train")
    if preset is not None:
        if not isinstance(preset, str):
            raise TypeError(f"preset must be a str, got {type(preset).__name__}")
        argv += ["--preset", preset]
    for name, value in options.items():
        if not isinstance(value, (str, int, float, bool, list, tuple, os.PathLike, type(None))):
            raise TypeError(f"{name} must be a str, number, bool, list or path, got {type(value).__name__}")
        argv += _flag(name, value)
    with tempfile.TemporaryDirectory() as scratch:
        log_path = os.fspath(log) if log is not None else os.path.join(scratch, "log.jsonl")
        argv += ["--log", log_path]
        sys.stdout.flush()
        status = _run(argv, log_path)
        history = _read_log(log_path)
    save = options.get("save")
    history["checkpoint"] = None if save is False else os.fspath(save or "rnnlm.safetensors")
    if status in (130, 143):
        raise KeyboardInterrupt(f"training stopped by a signal after {len(history['iterations'])} windows; "
                                f"resume with rnnlm.train(resume={history['checkpoint']!r})")
    return history


def _writes_to_a_file_descriptor(stream):
    try:
        stream.fileno()
        return True
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False


def _run(argv, log_path):
    """Runs the command line. Where Python's ``sys.stdout`` is not the process's own (a
    notebook's cell), the command's lines would not show: the run then goes on in a thread
    while this one prints each epoch's line from the log as it comes."""
    if _writes_to_a_file_descriptor(sys.stdout):
        return _native.run_cli(argv)
    outcome = {}

    def work():
        try:
            outcome["status"] = _native.run_cli(argv)
        except BaseException as error:  # handed to the caller's thread below
            outcome["error"] = error

    thread = threading.Thread(target=work, name="rnnlm.train")
    thread.start()
    shown = 0
    interrupted = False
    while thread.is_alive():
        try:
            thread.join(0.5)
        except KeyboardInterrupt:
            # The command saw the same signal: it stops after the current window and saves.
            interrupted = True
        epochs = _read_log(log_path)["epochs"]
        for record in epochs[shown:]:
            valid = record["valid_ppl"]
            valid = f"{valid:9.2f}" if valid is not None else f"{'-':>9}"
            print(
                f"epoch {record['epoch']:4d} | train ppl {record['train_ppl']:9.2f} | valid ppl {valid} | "
                f"{record['tokens_per_sec']:9.0f} tok/s | {record['elapsed_sec']:8.1f} s",
                flush=True,
            )
        shown = len(epochs)
    if "error" in outcome:
        raise outcome["error"]
    return 130 if interrupted and outcome["status"] == 0 else outcome["status"]


def _read_log(path):
    history = {"epochs": [], "iterations": [], "events": []}
    if not os.path.exists(path):
        return history
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                break  # a line still being written
            record = json.loads(line)
            if "event" in record:
                history["events"].append(record)
            elif "train_ppl" in record:
                history["epochs"].append(record)
            else:
                history["iterations"].append(record)
    return history
