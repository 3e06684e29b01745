"""Explain one decision: why the model scored this row as it did.

``make explain INPUT=batch.csv ROW=<id or row number> [MODEL=champion]``
loads the model as ``make predict`` does and prints, for that one row: the
model that decided (version, run, commit), the raw values, the features they
became, the score, the threshold and the decision, and the raw columns that
pushed the score most, each with how much.

How much a column pushed is measured in one of two ways, named in the output:

- a linear model (logistic or ridge regression): each feature's coefficient
  times its value (the features are scaled, so 0 is the training mean of a
  number and "not this category" of a category), summed over the features a
  raw column became: the column's share of the decision function
  (log-odds for a logistic regression), exactly;
- any other model: the change in the score when the column alone is set back
  to a typical training value (the training median of a number, the first
  category of a text), through the whole inference pipeline.

``ROW`` is a value of the model's first id column (``data.id_columns``), or,
when no id matches, the row's number in the file (1 is the first row after the
header). ``--json`` prints the same as JSON, for a case file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..shared import inference, registry
from ..shared.display import number, table
from ..shared.paths import shown
from .arguments import REF_HELP, failed
from .predict import Loaded, PredictError, chunks, load_model, validate

# How many columns the explanation lists, strongest first.
SHOWN = 5


def find_row(loaded: Loaded, source: Path, wanted: str) -> pd.DataFrame:
    """The one row of ``source`` that ``wanted`` names: an id value, else a row number."""
    columns = inference.columns(loaded.model)
    number_asked = int(wanted) if wanted.isdigit() else None
    seen = 0
    by_number = None
    for rows in chunks(source, columns):
        for name in loaded.id_columns[:1]:
            if name in rows.columns:
                hit = rows[rows[name].astype(str) == wanted]
                if len(hit):
                    return hit.head(1)
        if (
            number_asked is not None
            and by_number is None
            and seen < number_asked <= seen + len(rows)
        ):
            by_number = rows.iloc[[number_asked - seen - 1]]
        seen += len(rows)
    if by_number is not None:
        return by_number
    ids = f"a value of {loaded.id_columns[0]!r} or " if loaded.id_columns else ""
    raise PredictError(
        f"{shown(source)}: ROW={wanted} names no row: give {ids}a row number from 1 to {seen}"
    )


def features_of(model: Any, row: pd.DataFrame) -> pd.Series:
    """The features ``row``'s raw values became (the preprocessor's output)."""
    preprocessor = inference.pipeline_of(model).steps[0][1]
    found = preprocessor.transform(row)
    names = list(preprocessor.get_feature_names_out())
    return pd.Series(np.asarray(found, dtype=float)[0], index=names)


def raw_column(feature: str, columns: list[str]) -> str:
    """The raw column a feature comes from (the longest column name it starts with)."""
    candidates = [
        column
        for column in columns
        if feature == column
        or feature.startswith(f"{column}_")
        or feature == f"missingindicator_{column}"
    ]
    return max(candidates, key=len) if candidates else feature


def linear_pushes(model: Any, features: pd.Series, columns: list[str]) -> dict[str, float] | None:
    """Each raw column's share of a linear model's decision function, or ``None``."""
    estimator = inference.pipeline_of(model).steps[-1][1]
    coefficients = getattr(estimator, "coef_", None)
    if coefficients is None:
        return None
    weights = np.asarray(coefficients, dtype=float)
    if weights.ndim > 1:
        if weights.shape[0] != 1:  # one row of weights per class: no single score to split
            return None
        weights = weights[0]
    if hasattr(model, "threshold") and list(model.classes_).index(model.pos_label) == 0:
        weights = -weights  # the decision function is for the other class
    pushes: dict[str, float] = {}
    for name, value, weight in zip(features.index, features.to_numpy(), weights, strict=True):
        column = raw_column(str(name), columns)
        pushes[column] = pushes.get(column, 0.0) + float(value * weight)
    return pushes


def occlusion_pushes(model: Any, row: pd.DataFrame, score: float) -> dict[str, float]:
    """How much each raw column moved the score from what a typical value gives."""
    typical = inference.example(model)
    varied = pd.concat([row] * len(typical.columns), ignore_index=True)
    for position, column in enumerate(typical.columns):
        varied.loc[position, column] = typical.loc[0, column]
    scored = inference.predict(model, varied)
    found = scored[scored.columns[0]].to_numpy(dtype=float)
    return {
        column: score - float(found[position]) for position, column in enumerate(typical.columns)
    }


def explain(loaded: Loaded, source: Path, wanted: str) -> dict[str, Any]:
    """Everything the explanation says of row ``wanted`` of ``source``."""
    columns = inference.columns(loaded.model)
    raw = find_row(loaded, source, wanted)
    row = validate(raw, columns, shown(source), 0)
    predicted = inference.predict(loaded.model, row)
    scored = {name: _plain(predicted[name].iloc[0]) for name in predicted.columns}
    features = features_of(loaded.model, row)
    score = float(scored[predicted.columns[0]])
    pushes = linear_pushes(loaded.model, features, list(columns))
    method = "coefficient x feature, summed per raw column (decision function)"
    if pushes is None:
        pushes = occlusion_pushes(loaded.model, row, score)
        method = "score minus the score with the column at a typical training value"
    ordered = sorted(pushes.items(), key=lambda item: (-abs(item[1]), item[0]))
    about = loaded.about
    found: dict[str, Any] = {
        "model": {key: about.get(key) for key in ("version", "run_id", "commit", "pipeline_md5")},
        "row": wanted,
        "raw": {name: _plain(raw.iloc[0][name]) for name in columns},
        "features": {name: float(value) for name, value in features.items() if value != 0},
        **scored,
        "method": method,
        "pushes": dict(ordered),
    }
    if hasattr(loaded.model, "threshold"):
        found["threshold"] = float(loaded.model.threshold)
    return found


def _plain(value: Any) -> Any:
    """A value as JSON holds it (NumPy scalars as Python ones, blanks as null)."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and np.isnan(value) else value


def text(found: dict[str, Any]) -> str:
    """The explanation as an investigator reads it."""
    model = found["model"]
    lines = [
        f"Row {found['row']}, scored by {model['version'] or model['commit'][:12]} "
        f"(run {model['run_id']}, commit {model['commit'][:12]}):",
    ]
    if "decision" in found:
        threshold = f" (threshold {number(found['threshold'])})" if "threshold" in found else ""
        lines.append(f"  score {number(found['score'])}{threshold}: decision {found['decision']}")
    else:
        lines.append(f"  prediction {number(found['prediction'])}")
    lines.append("Raw values:")
    lines += [f"  {name}: {value}" for name, value in found["raw"].items()]
    lines.append("Features they became (zeros left out):")
    lines += [f"  {name}: {number(value)}" for name, value in found["features"].items()]
    lines.append(f"What pushed the score most ({found['method']}):")
    rows = [["column", "value", "push"]]
    for name, push in list(found["pushes"].items())[:SHOWN]:
        rows.append([name, str(found["raw"].get(name)), f"{push:+.4f}"])
    lines.append(table(rows))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Explain one row's decision (``make explain INPUT=... ROW=...``)."""
    parser = argparse.ArgumentParser(prog="explain", description="Explain one row's decision.")
    parser.add_argument("input", type=Path, help="the file that holds the row (CSV or Parquet)")
    parser.add_argument("row", help="an id value, or the row's number in the file (from 1)")
    parser.add_argument(
        "--model", default=registry.STAGE, help=f"champion, a version, or a {REF_HELP}"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    arguments = parser.parse_args(argv)
    try:
        found = explain(load_model(arguments.model), arguments.input, arguments.row)
    except (PredictError, registry.RegistryError) as error:
        return failed(error, 2)
    print(json.dumps(found, indent=2) if arguments.json else text(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
