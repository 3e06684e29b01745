"""The splits every stage hands to the next: which columns they hold, and their file I/O.

:func:`write_split` and :func:`read_split` store the train, validation and
test splits as Parquet (typed and compressed) in ``data/interim/`` and
``data/processed/``; :func:`read_features` reads a featurized split in the
layout a model is fitted and measured on; :func:`write_csv` writes the tables
people open themselves (the raw data, the plots).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.parquet as pq
from pandas.api.types import is_numeric_dtype

from .params import Data
from .paths import PROCESSED_DATA_DIR, shown

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Schema:
    """Which columns the pipeline uses, and how.

    ``inferred`` says the feature types were guessed from the column types
    rather than declared in ``params.yaml``.
    """

    target: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    inferred: bool = False
    slices: tuple[str, ...] = ()

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def kept(self) -> list[str]:
        """The columns a split keeps: the features, the target, then slices that are neither."""
        extra = [column for column in self.slices if column not in {*self.features, self.target}]
        return [*self.features, self.target, *extra]


def resolve_schema(frame: pd.DataFrame, data: Data) -> Schema:
    """Build the schema from the ``data`` parameters, inferring empty feature lists.

    Declaring the columns is safer (a renamed column fails loudly); inference
    lets a new dataset run before anyone has written its schema down.
    """
    if data.numeric or data.categorical:
        return Schema(
            target=data.target,
            numeric=tuple(data.numeric),
            categorical=tuple(data.categorical),
            slices=tuple(data.slices),
        )
    skipped = {data.target, *data.id_columns, *data.excluded}
    candidates = [column for column in frame.columns if column not in skipped]
    return Schema(
        target=data.target,
        numeric=tuple(c for c in candidates if is_numeric_dtype(frame[c])),
        categorical=tuple(c for c in candidates if not is_numeric_dtype(frame[c])),
        inferred=True,
        slices=tuple(data.slices),
    )


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    r"""Write a CSV the same way on every platform (``\n`` line ends), so its hash is stable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")


def split_file(name: str, folder: Path = PROCESSED_DATA_DIR) -> Path:
    """Where split ``name`` (``train``, ``validation``, ``test``) lives in ``folder``."""
    return folder / f"{name}.parquet"


def write_split(frame: pd.DataFrame, name: str, folder: Path) -> None:
    """Write split ``name`` to ``folder`` as Parquet, byte for byte the same on every run.

    Parquet keeps each column's type, so the next stage reads back exactly the
    numbers and text written here (no parsing, no rounding), in a fraction of
    the space and time of a CSV. The file records no timestamp, and its
    compression is named here, so a rerun writes the bytes ``dvc.lock`` hashed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    table = pyarrow.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, split_file(name, folder), compression="zstd")


def read_split(
    name: str, folder: Path = PROCESSED_DATA_DIR, *, text_as_categories: bool = False
) -> pd.DataFrame:
    """Read split ``name`` from ``folder`` (by default the featurized ``data/processed/``).

    With ``text_as_categories``, text columns are read as pandas categories:
    each distinct value is held once, where text would turn into one Python
    string per cell in scikit-learn's imputer and encoder (gigabytes at
    millions of rows). The values are the same either way.
    """
    return pq.read_table(split_file(name, folder)).to_pandas(
        strings_to_categorical=text_as_categories
    )


def read_features(
    name: str, target: str, folder: Path = PROCESSED_DATA_DIR
) -> tuple[pd.DataFrame, pd.Series]:
    """Read featurized split ``name`` (from ``folder``) as its features and ``target`` column.

    The features are filled column by column into one float64 matrix in row
    order: pandas makes no copy of it, and neither do estimators that work on
    that layout (``LogisticRegression``). The numbers are those written, to
    the last bit.
    """
    path = split_file(name, folder)
    table = pq.read_table(path)
    labels = table.column(target).to_pandas().rename(target)
    table = table.drop_columns([target])
    matrix = np.empty((table.num_rows, table.num_columns), dtype=np.float64)
    for position, column in enumerate(table.column_names):
        try:
            matrix[:, position] = table.column(position).to_numpy()
        except (TypeError, ValueError):
            raise ValueError(
                f"{shown(path)}: column {column!r} ({table.schema.field(position).type}) is "
                "not numbers; a model's features must all be numbers"
            ) from None
    return pd.DataFrame(matrix, columns=table.column_names, copy=False), labels


def read_columns(
    name: str,
    columns: list[str],
    folder: Path = PROCESSED_DATA_DIR,
    *,
    text_as_categories: bool = False,
) -> pd.DataFrame:
    """Read only ``columns`` of split ``name`` (from ``folder``), in row order.

    ``text_as_categories`` as for :func:`read_split`.
    """
    table = pq.read_table(split_file(name, folder), columns=columns)
    return table.to_pandas(strings_to_categorical=text_as_categories)


def read_types(name: str, folder: Path = PROCESSED_DATA_DIR) -> pd.DataFrame:
    """Split ``name``'s columns and their types, without reading a row (from ``folder``)."""
    return pq.read_schema(split_file(name, folder)).empty_table().to_pandas()


def read_target(name: str, target: str, folder: Path = PROCESSED_DATA_DIR) -> pd.Series:
    """Read only the ``target`` column of split ``name`` (from ``folder``)."""
    return read_columns(name, [target], folder)[target]


def split_target(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.Series]:
    """Separate the feature columns from the target column.

    Deprecated: :func:`read_features` reads a featurized split as both, in the
    layout a model fits on. Kept for stages of your own written before it.
    """
    warnings.warn(
        "split_target is deprecated: use read_features(name, target)",
        DeprecationWarning,
        stacklevel=2,
    )
    return frame.drop(columns=[target]), frame[target]
