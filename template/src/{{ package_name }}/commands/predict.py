"""Score a file with a promoted model, and record which model made which decision.

``make predict INPUT=batch.csv [MODEL=champion] [OUTPUT=...]`` loads the
inference pipeline of ``MODEL`` (the champion by default, or a version such
as ``v2``, a run id, a DVC experiment, a commit or a tag: :func:`load_model`),
checks the rows against the raw columns that pipeline was trained on, and
writes, in the rows' order, their id columns (``data.id_columns``), the score
and the decision, as CSV or Parquet by the output's extension. Rows are read
and scored :data:`CHUNK_ROWS` at a time, so memory stays flat on big files.

Beside the output, ``<output>.record.json`` says where every decision came
from: the model (name, version, stage, commit, run id, content key, registry),
the input's and output's SHA-256 and row counts, the categories the model
never saw in training (the encoder's policy for them applies), and the
environment. ``make predict RECORD=<record>`` scores that input again with
that model and says whether the output is byte for byte the same.

A file that cannot be scored (missing, not UTF-8, empty, a missing column,
text in a numeric column) stops it with one line naming the file, the column
and the rows, and no output is written.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pyarrow
import pyarrow.parquet as pq

from ..shared import inference, records, registry
from ..shared.display import listing
from ..shared.git import show_file
from ..shared.paths import PARAMS_PATH, PROJECT_ROOT, shown
from .arguments import REF_HELP, failed

CHUNK_ROWS = 100_000
RECORD_SUFFIX = ".record.json"
# How many bad rows a message quotes.
EXAMPLES = 3


class PredictError(Exception):
    """The rows cannot be scored as asked (reported in one line)."""


@dataclass(frozen=True)
class Loaded:
    """An inference pipeline, and where it comes from (the record's ``model``)."""

    model: Any
    about: dict[str, Any]
    id_columns: tuple[str, ...] = ()
    data: bytes = b""  # the pipeline file's bytes


def load_model(ref: str = registry.STAGE, root: Path = PROJECT_ROOT) -> Loaded:
    """The inference pipeline ``ref`` names: ``champion``, a version, run, experiment or commit.

    Raises:
        PredictError: nothing matches ``ref``, or its commit has no pipeline.
    """
    name, path = registry.model_artifact(root)
    version = registry.find_version(ref, name, root)
    if version is None and ref == registry.STAGE:
        raise PredictError(
            f"no version of {name} holds the {registry.STAGE} stage yet: "
            "make promote EXP=<experiment> promotes one, or pass MODEL=<run|experiment|commit>"
        )
    if version is not None:
        commit, record = version.commit, records.record_at(version.commit, root) or {}
    else:
        try:
            commit, record = records.find_run(ref, root)
        except records.RunNotFoundError as error:
            raise PredictError(f"MODEL={ref}: {error}") from None
        found = [known for known in registry.versions(name, root) if known.commit == commit]
        version = found[-1] if found else None
    data, md5 = registry.pipeline_bytes(commit, path, root)
    model = joblib.load(io.BytesIO(data))
    current = registry.champion(name, root)
    about = {
        "ref": ref,
        "name": name,
        "version": version.tag if version else None,
        "stage": registry.STAGE if current and version and current.tag == version.tag else None,
        "registry": version.details.get("registry") if version else None,
        "commit": commit,
        "run_id": record.get("run_id"),
        "experiment": records.experiment_of(commit, root) or record.get("experiment"),
        "content_key": record.get("content_key"),
        "pipeline_md5": md5,
    }
    return Loaded(model, about, tuple(id_columns_at(commit, root)), data)


def data_at(commit: str, root: Path) -> dict[str, Any]:
    """The ``data`` section of the ``params.yaml`` committed at ``commit`` (empty without one)."""
    import yaml

    text = show_file(root, commit, PARAMS_PATH)
    return (yaml.safe_load(text) or {}).get("data") or {} if text else {}


def id_columns_at(commit: str, root: Path) -> list[str]:
    """``data.id_columns`` as the ``params.yaml`` of ``commit`` declares them."""
    return [str(column) for column in data_at(commit, root).get("id_columns") or []]


def check_header(path: Path) -> list[str]:
    """The CSV's column names, refusing a missing, empty or non-UTF-8 file."""
    if not path.is_file():
        raise PredictError(f"{shown(path)}: there is no such file")
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            header = next(csv.reader(stream), [])
    except UnicodeDecodeError:
        raise PredictError(f"{shown(path)}: the file is not UTF-8 text") from None
    if not header:
        raise PredictError(f"{shown(path)}: the file is empty (it needs a header and rows)")
    return header


def chunks(path: Path, columns: dict[str, str]) -> Iterator[pd.DataFrame]:
    """The rows of ``path`` (CSV or Parquet), :data:`CHUNK_ROWS` at a time.

    Categorical columns are read as text, as prepare stores them.
    """
    if path.suffix.lower() == ".parquet":
        if not path.is_file():
            raise PredictError(f"{shown(path)}: there is no such file")
        for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS):
            yield batch.to_pandas()
        return
    header = check_header(path)
    text = {name: "string" for name, kind in columns.items() if kind == "categorical"}
    dtype: dict[Any, Any] = {name: kind for name, kind in text.items() if name in header}
    try:
        yield from pd.read_csv(path, chunksize=CHUNK_ROWS, dtype=dtype, encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise PredictError(f"{shown(path)}: the file is not UTF-8 text") from None


def validate(
    rows: pd.DataFrame, columns: dict[str, str], source: str, offset: int, unit: str = "line"
) -> pd.DataFrame:
    """The model's columns of ``rows``, typed as the model expects; refuse what cannot be.

    ``offset`` is the number of rows before this chunk: messages name lines
    of the file (the header is line 1), or with ``unit="row"`` the rows'
    positions (from 0, as in a request).
    """
    features, bad = typed(rows, columns, source)
    for name, wrong in bad.items():
        lines = positions(wrong, offset, unit)
        quoted = listing(repr(value) for value in rows[name][wrong].head(EXAMPLES).tolist())
        raise PredictError(
            f"{source}: column {name!r} must hold numbers; it holds {quoted} on {unit}"
            f"{'s' if len(lines) > 1 else ''} {listing(lines, limit=EXAMPLES)}"
        )
    return features


def typed(
    rows: pd.DataFrame, columns: dict[str, str], source: str
) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """The model's columns of ``rows`` typed, and per numeric column the rows that hold no number.

    Those rows are missing (NaN) in the typed columns. Categories are text
    (a request may send the code 1 for "1"), blanks NaN, which the imputers
    take for missing (None they do not).

    Raises:
        PredictError: ``rows`` lack a column the model reads.
    """
    missing = [name for name in columns if name not in rows.columns]
    if missing:
        raise PredictError(
            f"{source}: the model needs column{'s' if len(missing) > 1 else ''} "
            f"{listing(repr(name) for name in missing)}, which the file lacks"
        )
    found, bad = {}, {}
    for name, kind in columns.items():
        values = rows[name]
        if kind == "numeric":
            numbers = pd.to_numeric(values, errors="coerce")
            wrong = numbers.isna() & values.notna()
            if wrong.any():
                bad[name] = wrong
            found[name] = numbers.astype(float)
        else:
            text = values.astype("string").astype(object)
            found[name] = text.where(values.notna(), np.nan)
    return pd.DataFrame(found, index=rows.index), bad


def positions(rows: pd.Series, offset: int, unit: str = "line") -> list[str]:
    """Where the ``True`` rows of a chunk are: file lines (the header is line 1) or row numbers."""
    first = offset + (2 if unit == "line" else 0)
    return [str(first + position) for position in rows.to_numpy().nonzero()[0]]


def unseen(model: Any, rows: pd.DataFrame, columns: dict[str, str]) -> dict[str, int]:
    """Per categorical column, how many of ``rows`` hold a category training never saw."""
    preprocessor = inference.pipeline_of(model).steps[0][1]
    found: dict[str, int] = {}
    for kind, transformer, names in preprocessor.transformers_:
        encoder = dict(getattr(transformer, "named_steps", {})).get("encode")
        if kind != "categorical" or encoder is None:
            continue
        for name, known in zip(names, encoder.categories_, strict=False):
            values = rows[name]
            count = int((values.notna() & ~values.isin(list(known))).sum())
            if count and columns.get(name):
                found[name] = count
    return found


def sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def score_file(loaded: Loaded, source: Path, target: Path) -> dict[str, Any]:
    """Score ``source`` into ``target``; return what the record says of the rows.

    Written to a temporary file beside ``target`` and moved there at the end,
    so a refused file leaves no partial output.
    """
    columns = inference.columns(loaded.model)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=target.suffix)
    os.close(handle)
    written, counted, writer = 0, {}, None
    try:
        for rows in chunks(source, columns):
            features = validate(rows, columns, shown(source), written)
            if rows.empty:  # a header alone: read_csv yields one empty chunk
                continue
            scored = inference.predict(loaded.model, features)
            kept = [name for name in loaded.id_columns if name in rows.columns]
            output = pd.concat([rows[kept], scored], axis=1)
            for name, count in unseen(loaded.model, features, columns).items():
                counted[name] = counted.get(name, 0) + count
            if target.suffix.lower() == ".parquet":
                table = pyarrow.Table.from_pandas(output, preserve_index=False)
                writer = writer or pq.ParquetWriter(temporary, table.schema, compression="zstd")
                writer.write_table(table)
            else:
                output.to_csv(
                    temporary, mode="a", header=written == 0, index=False, lineterminator="\n"
                )
            written += len(rows)
        if writer is not None:
            writer.close()
        if written == 0:
            raise PredictError(f"{shown(source)}: the file has a header but no rows")
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return {"rows": written, "unseen_categories": counted}


def record_path(output: Path) -> Path:
    """Where the record of ``output`` goes: beside it, ``<output>.record.json``."""
    return output.with_name(output.name + RECORD_SUFFIX)


def default_output(source: Path) -> Path:
    """``batch.csv`` is scored into ``batch.predictions.csv``, beside it."""
    return source.with_name(f"{source.stem}.predictions{source.suffix}")


def predict(source: Path, ref: str, target: Path, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """Score ``source`` with the model ``ref`` names into ``target``, and write its record."""
    loaded = load_model(ref, root)
    scored = score_file(loaded, source, target)
    record = {
        "model": loaded.about,
        "input": {"path": where(source), "sha256": sha256(source), "rows": scored["rows"]},
        "output": {"path": where(target), "sha256": sha256(target), "rows": scored["rows"]},
        "unseen_categories": scored["unseen_categories"],
        "environment": records.environment(root),
    }
    record_path(target).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", "utf-8")
    return record


def where(path: Path) -> str:
    """``path`` as a record keeps it: from the project root when inside, else absolute."""
    return shown(path.resolve())


def rescore(path: Path, root: Path = PROJECT_ROOT) -> int:
    """Score a recorded batch again with its model; 0 when the output is byte for byte the same."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        source, model = root / record["input"]["path"], record["model"]
    except (OSError, ValueError, KeyError, TypeError):
        raise PredictError(f"{shown(path)} is not a prediction record") from None
    if not source.is_file() or sha256(source) != record["input"]["sha256"]:
        raise PredictError(
            f"{shown(source)} is not the recorded input any more (missing, or its SHA-256 "
            "differs): restore that file to score it again"
        )
    loaded = load_model(model["commit"], root)
    with tempfile.TemporaryDirectory() as folder:
        again = Path(folder) / Path(record["output"]["path"]).name
        score_file(loaded, source, again)
        found = sha256(again)
    recorded = record["output"]["sha256"]
    verdict = (
        "the output is byte for byte the recorded one."
        if found == recorded
        else f"the output differs (SHA-256 {found[:12]}, recorded {recorded[:12]})."
    )
    name = model.get("version") or model["commit"][:12]
    print(f"Scored {shown(source)} again with {name}: {verdict}")
    return 0 if found == recorded else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Score a file (``make predict INPUT=... [MODEL=...] [OUTPUT=...]``), or rescore a record."""
    parser = argparse.ArgumentParser(
        prog="predict", description="Score a file with a promoted model; record the lineage."
    )
    parser.add_argument("input", nargs="?", type=Path, help="the rows to score (CSV or Parquet)")
    parser.add_argument(
        "--model", default=registry.STAGE, help=f"champion, a version, or a {REF_HELP}"
    )
    parser.add_argument("--output", type=Path, help="where the predictions go (.csv or .parquet)")
    parser.add_argument("--record", type=Path, help="a prediction record to score again")
    arguments = parser.parse_args(argv)
    try:
        if arguments.record is not None:
            return rescore(arguments.record)
        if arguments.input is None:
            parser.error("give the file to score (make predict INPUT=...) or RECORD=...")
        target = arguments.output or default_output(arguments.input)
        record = predict(arguments.input, arguments.model, target)
    except (PredictError, registry.RegistryError) as error:
        return failed(error, 2)
    model = record["model"]
    print(
        f"Scored {record['input']['rows']} rows of {shown(arguments.input)} with "
        f"{model['version'] or model['commit'][:12]} (run {model['run_id']}): {shown(target)}"
    )
    for name, count in record["unseen_categories"].items():
        print(f"  {name}: {count} rows with a category training never saw")
    print(f"Record: {shown(record_path(target))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
