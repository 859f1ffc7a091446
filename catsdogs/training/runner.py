"""The (variant, seed) matrix: what to run, on which data, into which result set.

Shared by `catsdogs run` and `pytest bench`: both resolve the same options, call
`start_session` once (every check that could make the session unusable, before any run:
one refusal, the same words in both), then `run_and_record` per (variant, seed). A run
that raises or diverges becomes a row with status=failed and the error, and the session
goes on; an interruption (Ctrl-C, SIGTERM) abandons the current run without writing a row
for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from catsdogs.backend import DEFAULT_BACKEND, apply_backend, is_out_of_memory, keras_module
from catsdogs.constants import IMAGE_SIZE_TEXT
from catsdogs.dataset import fetch, scan
from catsdogs.errors import ResultsError, UsageError, quoted
from catsdogs.options import BenchOptions
from catsdogs.resultset.load import LoadedSet, read_set
from catsdogs.resultset.outputs import check_appendable, check_writable
from catsdogs.resultset.store import ResultSet
from catsdogs.training.machine import differences, machine_facts

if TYPE_CHECKING:
    from catsdogs.progress import Reporter


class Interrupted(BaseException):
    """SIGTERM, turned into an exception like Ctrl-C's KeyboardInterrupt, so the current
    run unwinds without recording anything and the process exits cleanly."""


# Signals that arrive while a run's rows are being written wait here until they are
# written, so an interruption never leaves a run's epochs without its row.
_deferring = False
_deferred: list[BaseException] = []
# The last exception a signal raised. A handler's raise lands in whatever Python code runs
# when the signal arrives; inside a garbage-collector callback (JAX registers one) or a
# __del__, Python only prints "Exception ignored" and goes on. Training raises it again
# at the next batch (`raise_swallowed_signal`), so no signal is lost.
_raised: list[BaseException] = []
# While a run trains, the handler only records the signal (in `_raised`) and returns: a
# raise from inside a handler can land in the middle of the framework's own C code, where
# TensorFlow has been seen to crash with SIGSEGV instead of unwinding (a SIGTERM during
# `fit`'s metric reset). The batch-end callback raises it at the next batch instead.
_polling = False


def install_signal_handlers() -> None:
    """SIGTERM (runner pre-emption, `kill`) unwinds like Ctrl-C (SIGINT) does."""

    def handler(signum, frame):
        exc = (KeyboardInterrupt() if signum == signal.SIGINT
               else Interrupted(f"signal {signum}"))
        if _deferring:
            _deferred.append(exc)
            return
        held = _polling and not _raised  # the first while training waits for a batch end;
        _raised[:] = [exc]               # a second one, or one outside training, raises now
        if held:
            return
        raise exc

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    if getattr(sys.unraisablehook, "__name__", "") != _quiet_about_signals.__name__:
        _quiet_about_signals.previous = sys.unraisablehook  # once, however often installed
        sys.unraisablehook = _quiet_about_signals


def _quiet_about_signals(unraisable) -> None:
    """No "Exception ignored" traceback for a signal's exception: it is raised again at
    the next batch (`raise_swallowed_signal`); anything else goes to the previous hook."""
    if not isinstance(unraisable.exc_value, (KeyboardInterrupt, Interrupted)):
        _quiet_about_signals.previous(unraisable)


def raise_swallowed_signal(*_: Any, **__: Any) -> None:
    """Raise a signal's exception again if it has not unwound the run yet (see `_raised`):
    called after every training and validation batch, where it costs one list check."""
    if _raised:
        raise _raised.pop()


def signal_callback():
    """A Keras callback that calls `raise_swallowed_signal` after every batch and epoch."""
    import keras

    return keras.callbacks.LambdaCallback(
        on_train_batch_end=raise_swallowed_signal, on_test_batch_end=raise_swallowed_signal,
        on_epoch_end=raise_swallowed_signal)


@contextlib.contextmanager
def _signals_polled():
    """While training, a signal is raised at the next batch end (`signal_callback`) or when
    the block ends, never from inside the handler (see `_polling`)."""
    global _polling
    _polling = True
    try:
        yield
    finally:  # a signal that came after the last batch, or beside a failure, still wins:
        _polling = False  # the run is abandoned, not recorded as finished or failed
        raise_swallowed_signal()


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT/SIGTERM back while a run is being recorded; raise them afterwards."""
    global _deferring
    _deferring = True
    try:
        yield
    finally:
        _deferring = False
    if _deferred:
        exc = _deferred[0]
        _deferred.clear()
        raise exc


# ---------------------------------------------------------------- the matrix


def matrix(variants: tuple[str, ...], seeds: tuple[int, ...],
           shard: tuple[int, int] | None = None) -> list[tuple[str, int]]:
    """Every (variant, seed) in a fixed order; with shard K/N, every N-th pair starting at
    the K-th, so N runners together cover each pair exactly once."""
    pairs = [(variant, seed) for variant in variants for seed in seeds]
    if shard is None:
        return pairs
    k, n = shard
    if not 1 <= k <= n:
        raise UsageError(f"--shard: expected 1 <= K <= N, got {k}/{n}")
    return pairs[k - 1::n]


@dataclasses.dataclass
class Prepared:
    """Data and provenance resolved once per session."""

    options: BenchOptions
    data_dir: Path
    info: Any  # scan.DatasetInfo
    dataset: str  # "real", "synthetic" or "derived"
    environment: dict[str, Any]
    resumed: LoadedSet | None = None  # the --resume set, as checked before anything ran


def _counter(progress: Reporter | Callable[[str], None] | None, label: str, unit: str):
    """The (done, total) callback of a progress reporter; a plain line sink (what
    `catsdogs speed` passes) has none, and counts then go unreported."""
    make = getattr(progress, "counter", None)
    return make(label, unit) if make else None


def resolve_data_dir(options: BenchOptions,
                     progress: Reporter | Callable[[str], None] | None = None) -> Path:
    """The dataset folder: synthetic (generated, cached), explicit, Keras cache or download
    (68 MB: its progress goes to `progress`, so a first run does not look stuck)."""
    if options.synthetic:
        from catsdogs.dataset.synthetic import ensure_synthetic

        return ensure_synthetic()
    return fetch.locate_dataset(options.data_dir, progress=_counter(progress, "download", "bytes"))


def _refuse_inside_data(options: BenchOptions, data_dir: Path) -> None:
    """A results folder inside the dataset would be read back as data (`runs/` became a
    class folder): refuse it before anything is created there."""
    data = Path(data_dir).resolve()
    for flag, value in (("--results-dir", options.results_dir), ("--resume", options.resume)):
        if value and Path(value).resolve().is_relative_to(data):
            raise UsageError(f"{flag} {quoted(value)}: is inside the dataset folder "
                             f"{quoted(data)}; expected a folder outside it (Keras would read "
                             "it as images)")


def check_resume(options: BenchOptions, dataset: str, info: Any) -> LoadedSet:
    """The --resume set, read through the one loader (schema version, columns, types,
    every row, environment.json), and this session's data and options matched against
    it. Called before TensorFlow loads and before anything is opened for writing, so a
    refused set is left byte for byte as it was."""
    try:
        loaded = read_set(options.resume)
    except ResultsError as exc:
        raise ResultsError(f"--resume: {exc}") from None
    check_appendable(options.resume)  # read-only volume, no permission: before training
    recorded = loaded.environment
    mine = {"dataset": dataset, "dataset_fingerprint": info.fingerprint}
    for key, value in mine.items():
        if recorded.get(key) != value:
            raise UsageError(f"--resume {quoted(options.resume)}: its {key} is "
                             f"{recorded.get(key)!r}, this session's is {value!r}; expected "
                             "the same data")
    old = recorded.get("options", {})
    if not isinstance(old, dict):
        raise ResultsError(f"--resume {quoted(options.resume)}: environment.json options is "
                           f"{old!r}; expected an object")
    for key in ("epochs", "batch_size", "limit", "weights", "deterministic",
                "mixed_precision", "xla", "strategy", "skip_bad_images"):
        if key in old and old[key] != getattr(options, key):
            raise UsageError(f"--resume {quoted(options.resume)}: it was run with "
                             f"{key}={old[key]!r}, this session has "
                             f"{getattr(options, key)!r}; expected the same")
    backend = old.get("backend", DEFAULT_BACKEND)  # sets before --backend ran on TensorFlow
    if backend != options.backend:
        raise UsageError(f"--resume {quoted(options.resume)}: it was run with "
                         f"backend={backend!r}, this session has {options.backend!r}; "
                         "expected the same (one result set holds one backend)")
    check_same_machine(options.resume, recorded.get("machine"), machine_facts())
    return loaded


def check_same_machine(resume: str, recorded: Any, current: dict[str, Any]) -> None:
    """A set's step times are one machine's: rows from another (other CPU features, another
    affinity, other thread settings) would make its runs disagree for reasons no verdict
    can see. A set written before machines were recorded (schema 1 and 2) has none to
    match; it is resumed, and its new rows, in its own schema, record none either."""
    if not isinstance(recorded, dict) or not recorded.get("fingerprint"):
        return
    if recorded["fingerprint"] != current["fingerprint"]:
        differ = "; ".join(differences(recorded, current, sides=("the set", "this session"))
                           ) or "its facts are not recorded"
        raise UsageError(f"--resume {quoted(resume)}: it was recorded on machine "
                         f"{recorded['fingerprint']}, this session runs on "
                         f"{current['fingerprint']} ({differ}); expected the same machine "
                         "(start a new result set here)")


#: What a --resume session must share with the set it appends to, beyond data and options:
#: rows of another release (or machine) in one set would be averaged as one. Each key is
#: compared between the set's environment.json and this session's provenance; the machine
#: identity is checked beside it, by fingerprint (check_same_machine).
RESUME_MUST_MATCH: tuple[str, ...] = ("tf_version", "keras_version", "python_version")


def check_resume_software(resume: str, recorded: dict[str, Any],
                          current: dict[str, Any]) -> None:
    """Refuse to append this session's rows to a set recorded under other software: the
    set would then hold two releases, and `report` would average them as one. Checked
    once TensorFlow is loaded (the versions are known only then), before the first model
    trains; keys the set never recorded are not compared."""
    for key in RESUME_MUST_MATCH:
        if key in recorded and recorded[key] != current.get(key):
            raise UsageError(f"--resume {quoted(resume)}: it was recorded with {key} "
                             f"{recorded[key]!r}, this session runs {current.get(key)!r}; "
                             "expected the same (record this release in a new result set, "
                             "then compare the two)")


def prepare(options: BenchOptions,
            progress: Reporter | Callable[[str], None] | None = None) -> Prepared:
    """Check everything that can be checked before training: data layout and files,
    --limit, the results folder or the whole --resume set, and the weights file's
    presence first, without TensorFlow, so a mistake is reported in a second and nothing
    is written; then provenance, whether the weights fit model4, and every image the
    session will use."""
    from catsdogs.dataset.pipeline import check_images, check_limit, decoder_name
    from catsdogs.models import get_variant, resolve_weights

    # Before anything can import Keras: it reads its backend once, at its first import.
    apply_backend(options.backend, deterministic=options.deterministic)
    if not options.resume:  # first: a synthetic set or a download is made only after it
        check_writable(options.results_dir)
    data_dir = resolve_data_dir(options, progress)
    _refuse_inside_data(options, data_dir)
    info = scan.scan_dataset(data_dir, skip_bad=options.skip_bad_images)
    check_limit(options.limit, info.counts())
    dataset = scan.dataset_kind(data_dir)
    resumed = check_resume(options, dataset, info) if options.resume else None
    weights_path = None
    if any(get_variant(v).uses_weights for v in options.variants):
        weights_path = resolve_weights(options.weights)  # fail before any training starts
    environment = _environment(options, weights_path)
    if resumed is not None:
        check_resume_software(options.resume, resumed.environment, environment)
    skipped = info.bad_files + check_images(data_dir, info, options.seeds, options.limit,
                                            skip_bad=options.skip_bad_images,
                                            progress=_counter(progress, "decode", "images"))
    environment.update({
        "data_dir": str(Path(data_dir).resolve()),
        "dataset": dataset,
        "dataset_fingerprint": info.fingerprint,
        "dataset_fingerprint_known": info.fingerprint_known,
        "dataset_changes": info.changes,
        "non_image_files": len(info.non_image_files),
        "skipped_images": skipped,
        "decoder": decoder_name(),
    })
    return Prepared(options, Path(data_dir), info, dataset, environment, resumed)


def _environment(options: BenchOptions, weights_path: Any) -> dict[str, Any]:
    """Provenance of the session, after checking the weights file fits model4."""
    from catsdogs.models import mobilenet_base, weights_provenance
    from catsdogs.training import provenance

    provenance.check_expected_tf()  # the env's named TF release, before anything is written
    environment = provenance.collect()
    if weights_path is not None:
        mobilenet_base(weights_path)  # a file that does not fit MobileNetV2 fails here
        keras_module().backend.clear_session()
    environment.update({
        "weights": options.weights, "weights_file": weights_path,
        **weights_provenance(weights_path),
        "options": {key: (list(value) if isinstance(value, tuple) else value)
                    for key, value in dataclasses.asdict(options).items()},
    })
    return environment


def open_result_set(prepared: Prepared) -> ResultSet:
    """A new result set, or the one named by --resume (already checked by `prepare`),
    written in its own schema version."""
    if prepared.resumed is None:
        return ResultSet.create(prepared.options.results_dir, prepared.environment)
    return ResultSet(prepared.resumed.path, prepared.resumed.schema_version)


def pending(prepared: Prepared) -> list[tuple[str, int]]:
    """The pairs this session must run: its shard of the matrix, less those already
    recorded in the --resume set (as read and checked by `prepare`)."""
    options = prepared.options
    done = ({(row["variant"], row["seed"]) for row in prepared.resumed.runs}
            if prepared.resumed is not None else set())
    return [pair for pair in matrix(options.variants, options.seeds, options.shard)
            if pair not in done]


class Session:
    """A session that passed every check: its data, and its result set (created on first
    use, so a session that records nothing, e.g. the speed benchmark alone, leaves no
    empty set behind)."""

    def __init__(self, prepared: Prepared, result_set: ResultSet | None = None) -> None:
        self.prepared = prepared
        self._result_set = result_set

    @property
    def result_set(self) -> ResultSet:
        if self._result_set is None:
            self._result_set = open_result_set(self.prepared)
        return self._result_set

    @property
    def started(self) -> bool:
        """Whether the result set exists yet (reading it would create it otherwise)."""
        return self._result_set is not None

    def todo(self) -> list[tuple[str, int]]:
        """The pairs still to run (without --resume a new set holds nothing yet)."""
        return pending(self.prepared)


def start_session(options: BenchOptions, progress: Reporter | None = None,
                  result_set: str | Path | None = None) -> Session:
    """Everything that would make a whole session unusable, checked once before any run:
    the dataset (found, downloaded or refused), --limit, the results folder or the
    --resume set (and that it ran the same configuration), model4's weights, every image.
    `catsdogs run` and the pytest bench both start here, so they refuse with the same
    words (a UsageError, one line). `result_set` joins an existing set instead (an xdist
    worker writing into its controller's set)."""
    prepared = prepare(options, progress)
    session = Session(prepared, ResultSet.open(result_set) if result_set else None)
    if options.resume:
        session.result_set  # noqa: B018 -- the resumed set is this session's from the start
    return session


# ---------------------------------------------------------------- one run, recorded


def _base_row(prepared: Prepared, variant: str, seed: int, splits) -> dict[str, Any]:
    """The provenance and configuration fields every row carries, success or failure."""
    from catsdogs.models import get_variant

    options, env = prepared.options, prepared.environment
    return {
        "run_id": f"{variant}-s{seed}-{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%S%fZ}",
        "variant": variant, "alias": get_variant(variant).alias, "seed": seed,
        "epochs": options.epochs, "batch_size": options.batch_size, "image_size": IMAGE_SIZE_TEXT,
        "dataset": prepared.dataset, "dataset_fingerprint": prepared.info.fingerprint,
        "dataset_fingerprint_known": prepared.info.fingerprint_known,
        "dataset_changes": prepared.info.changes, "limit": options.limit,
        "n_train": splits.count("train") if splits else None,
        "n_validation": splits.count("validation") if splits else None,
        "n_test": splits.count("test") if splits else None,
        "skipped_images": len(splits.skipped) if splits else None,
        "pretrained": bool(get_variant(variant).uses_weights and options.weights != "none"),
        "weights": options.weights if get_variant(variant).uses_weights else "",
        "deterministic": options.deterministic, "mixed_precision": options.mixed_precision,
        "xla": options.xla, "strategy": options.strategy,
        "shard": "{}/{}".format(*options.shard) if options.shard else "",
        **{key: env.get(key, "") for key in ("tf_version", "keras_version", "python_version",
                                              "cuda_version", "cudnn_version", "device",
                                              "gpu_name", "host", "git_commit")},
        # The backend block (schema: BACKEND_COLUMNS): what trained, beside Keras.
        **{key: env.get(key, "") for key in ("backend", "jax_version", "jaxlib_version",
                                              "torch_version", "decoder")},
        "machine_fingerprint": (env.get("machine") or {}).get("fingerprint", ""),
        "started_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _error_text(exc: BaseException) -> str:
    """One line for the error column; an out-of-memory error says what to do about it."""
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    if is_out_of_memory(exc):
        return f"out of memory: {first}; lower --batch-size"
    return f"{type(exc).__name__}: {first}"


def load_data(prepared: Prepared, seed: int):
    """The splits for one seed (decoded images are cached per process, so this is cheap
    after the first call)."""
    from catsdogs.dataset.pipeline import load_splits

    options = prepared.options
    return load_splits(prepared.data_dir, seed=seed, limit=options.limit,
                       batch_size=options.batch_size, info=prepared.info,
                       skip_bad_images=options.skip_bad_images)


def run_one(prepared: Prepared, variant: str, seed: int,
            progress: Callable[[str], None] | None = None, keras_verbose: int = 0,
            splits=None, callbacks: tuple = ()) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train one pair and return (run row, epoch rows), status ok or failed. Interruptions
    (KeyboardInterrupt, Interrupted) propagate: nothing is recorded for this pair.
    `splits` may be loaded beforehand (the bench does, to keep decoding out of its timing);
    `callbacks` are extra Keras callbacks (the live display, the bench's epoch rounds)."""
    from catsdogs.training.train import TrainConfig, train_run

    options = prepared.options
    try:
        splits = splits if splits is not None else load_data(prepared, seed)
        row = _base_row(prepared, variant, seed, splits)
        config = TrainConfig(epochs=options.epochs, batch_size=options.batch_size,
                             weights=options.weights, deterministic=options.deterministic,
                             mixed_precision=options.mixed_precision, xla=options.xla,
                             strategy=options.strategy)
        with _signals_polled():
            result = train_run(variant, splits, seed=seed, config=config, progress=progress,
                               keras_verbose=keras_verbose,
                               extra_callbacks=(*callbacks, signal_callback()))
    except (KeyboardInterrupt, Interrupted):
        _raised.clear()  # it unwound the run: nothing left to raise again
        raise
    except UsageError:
        raise  # bad input stops the session: every later run would fail the same way
    except Exception as exc:  # one failed run must not end the matrix: record it, go on
        row = _base_row(prepared, variant, seed, splits)
        row.update(status="failed", error=_error_text(exc),
                   finished_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        if progress:
            progress(f"  FAILED {variant} seed {seed}: {row['error']}")
        return row, []
    epoch_rows = [dict(epoch, run_id=row["run_id"], variant=variant, seed=seed)
                  for epoch in result.pop("epochs")]
    result.pop("n_test_evaluated", None)
    row.update({key: value for key, value in result.items() if key not in ("variant", "alias",
                                                                           "seed")})
    row.update(status="ok", error="",
               finished_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    return row, epoch_rows


def run_and_record(prepared: Prepared, result_set: ResultSet | Session, variant: str,
                   seed: int, progress: Callable[[str], None] | None = None,
                   keras_verbose: int = 0, splits=None, callbacks: tuple = ()
                   ) -> dict[str, Any]:
    """Train one pair and append its rows to the result set as soon as it ends. Given the
    Session, its new set is created only now, with the first finished run (signals held
    back until the row is in), so an interruption before that leaves no empty set."""
    row, epoch_rows = run_one(prepared, variant, seed, progress, keras_verbose, splits,
                              callbacks)
    with _signals_deferred():
        target = result_set.result_set if isinstance(result_set, Session) else result_set
        target.append_run(row, epoch_rows)
    return row
