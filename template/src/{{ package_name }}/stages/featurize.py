"""Featurize: turn the raw columns into the numbers a model needs.

The transformers learn everything they need (medians, categories, scales)
from the training split only, so no information leaks from the validation or
test rows into the model. The stage writes the featurized training split,
which train fits on, and the fitted preprocessor, which the evaluate stage
joins to the model in the inference pipeline (:mod:`..shared.inference`):
validation, test and new rows go through that one pipeline, raw.
"""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ..shared import resources
from ..shared.params import Featurize, load_params
from ..shared.paths import INTERIM_DATA_DIR, PREPROCESSOR_FILE, PROCESSED_DATA_DIR
from ..shared.splits import Schema, read_split, resolve_schema, write_split


def build_preprocessor(schema: Schema, params: Featurize) -> ColumnTransformer:
    """Impute and scale numeric columns; impute and one-hot encode categorical ones.

    Missing numbers get a "was missing" indicator column because, in data
    typed in by people, a blank field is often a signal in itself.
    """
    numeric = Pipeline(
        [
            ("impute", SimpleImputer(strategy=params.numeric_imputer, add_indicator=True)),
            ("scale", StandardScaler()),
        ]
    )
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            (
                "encode",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    min_frequency=params.min_category_frequency,
                    sparse_output=False,
                    dtype=np.uint8,  # 0 or 1: a byte a cell, not eight
                ),
            ),
        ]
    )
    preprocessor = ColumnTransformer(
        [
            ("numeric", numeric, list(schema.numeric)),
            ("categorical", categorical, list(schema.categorical)),
        ],
        verbose_feature_names_out=False,
    )
    return preprocessor.set_output(transform="pandas")


def featurize(
    preprocessor: ColumnTransformer, rows: pd.DataFrame, schema: Schema, *, fit: bool = False
) -> pd.DataFrame:
    """Transform one split's features (fitting the preprocessor on them first with ``fit``)."""
    transform = preprocessor.fit_transform if fit else preprocessor.transform
    features = transform(rows[schema.features])
    features[schema.target] = rows[schema.target].to_numpy()
    return features


def main() -> None:
    """Fit the preprocessor on the training split, and transform it in the same pass."""
    params = load_params()
    train = read_split("train", INTERIM_DATA_DIR, text_as_categories=True)
    schema = resolve_schema(train, params.data)
    preprocessor = build_preprocessor(schema, params.featurize)
    write_split(featurize(preprocessor, train, schema, fit=True), "train", PROCESSED_DATA_DIR)
    PREPROCESSOR_FILE.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(preprocessor, PREPROCESSOR_FILE)
    n_features = len(preprocessor.get_feature_names_out())
    print(f"{n_features} features from {len(schema.features)} columns")


if __name__ == "__main__":
    with resources.recorded("featurize"):
        main()
