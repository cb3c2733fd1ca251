"""`mlflow.pyfunc` wrappers of a `ModelPair`, so the registered models can be loaded and served by
plain MLflow tooling as well as by `forecast score`.

MLflow's lightgbm flavour cannot be used: it re-encodes pandas categoricals by position and has
no notion of headcount as exposure. Both wrappers carry the whole pair directory
(`ModelPair.to_dir`) as the artifact `pair`, so attrition and CSAT can never drift apart.

Signatures and input examples are built from a synthetic row of feature values (column medians),
never from a real row: no `team_id`, no `employee_id` ever reaches a model artifact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from forecast.data.lineage import package_versions
from forecast.features.names import BASELINE_COLUMNS
from forecast.mlops.tracking import muted
from forecast.models.fit import design_matrix, has_recent_cx
from forecast.models.pair import ModelPair

if TYPE_CHECKING:
    from forecast.models.pair import ModelPair

PAIR_ARTIFACT = "pair"
RATE_COLUMN = "expected_attrition_rate"


class _PairModel(mlflow.pyfunc.PythonModel):
    """Loads the pair once per process from the logged directory."""

    # MLflow would wrap predict to validate inputs against its type hints, warning (under a
    # filter of its own that no caller can silence) that there are none; the logged signature
    # is the schema here, so opt out the way MLflow's own ChatModel does.
    _skip_type_hint_validation = True
    pair: ModelPair

    def load_context(self, context: Any) -> None:

        self.pair = ModelPair.from_dir(context.artifacts[PAIR_ARTIFACT])


class AttritionPyfunc(_PairModel):
    """Feature frame (with `headcount`) -> `expected_leavers` and `attrition_rate` over the
    horizon."""

    # `model_input` stays unannotated: MLflow 3 reads predict's type hints as a schema
    # and accepts only list[...]; the logged signature is the schema instead.
    def predict(self, context: Any, model_input, params: dict | None = None) -> pd.DataFrame:
        return predict_attrition(self.pair, model_input)


class CsatPyfunc(_PairModel):
    """Feature frame plus `expected_attrition_rate` -> `csat_change` (CSAT points over the
    horizon). Taking the rate as an input lets a caller ask "what if attrition were X"."""

    def predict(self, context: Any, model_input, params: dict | None = None) -> pd.DataFrame:
        return predict_csat(self.pair, model_input)


def _with_keys(pair: ModelPair, model_input: Any) -> pd.DataFrame:
    # Serving inputs carry no team_id / as_of (they are not features); the pair's helpers
    # expect them, so placeholders are added and never returned.
    frame = pd.DataFrame(model_input).reset_index(drop=True).copy()
    if "team_id" not in frame:
        frame["team_id"] = pd.array([str(i) for i in range(len(frame))], dtype="string")
    if "as_of" not in frame:
        frame["as_of"] = pd.Period(pair.trained_until, freq="M")
    return frame


def predict_attrition(pair: ModelPair, model_input: Any) -> pd.DataFrame:
    frame = _with_keys(pair, model_input)
    rate = np.exp(pair.attrition_raw(frame))
    headcount = frame["headcount"].to_numpy(dtype="float64")
    return pd.DataFrame({"expected_leavers": rate * headcount, "attrition_rate": rate})


def predict_csat(pair: ModelPair, model_input: Any) -> pd.DataFrame:

    frame = _with_keys(pair, model_input)
    if pair.csat_booster is None:
        return pd.DataFrame({"csat_change": np.full(len(frame), np.nan)})
    X = design_matrix(frame, pair.features)
    X[RATE_COLUMN] = frame[RATE_COLUMN].to_numpy(dtype="float64")
    pred = pair.csat_booster.predict(X, raw_score=True)
    # Same rule as ModelPair.predict: a team with no CX signal gets null, not a guess.
    pred = np.where(has_recent_cx(frame, pair.features), pred, np.nan)
    return pd.DataFrame({"csat_change": pred})


def example_input(pair: ModelPair, panel: pd.DataFrame, *, csat: bool) -> pd.DataFrame:
    """One synthetic row: the median of every feature and of headcount over the panel, so the
    example documents typical values without being any team's data."""
    row: dict[str, float] = {"headcount": float(panel["headcount"].median())}
    # A pair blended with the team's long-run rate also reads that rate's inputs.
    extra = list(BASELINE_COLUMNS) if pair.baseline is not None and not csat else []
    for name in [*pair.features, *extra]:
        values = pd.to_numeric(panel[name], errors="coerce") if name in panel else pd.Series([])
        median = values.median()
        row[name] = float(median) if pd.notna(median) else 0.0
    if csat:
        row[RATE_COLUMN] = 0.05
    return pd.DataFrame([row])


def log_pair_models(pair: ModelPair, pair_dir: str, panel: pd.DataFrame) -> dict[str, str | None]:
    """Log both wrappers into the active run; returns their model URIs (`csat` None when the
    pair has no CSAT model)."""

    versions = package_versions()
    # Explicit requirements: MLflow's inference would re-load the model in a subprocess (slow)
    # and cannot see that the wrapper needs `forecast` itself.
    requirements = [
        f"{name}=={versions[name]}"
        for name in ("forecast", "mlflow", "lightgbm", "pandas", "numpy")
        if name in versions
    ]
    uris: dict[str, str | None] = {"attrition": None, "csat": None}
    wrappers: list[tuple[str, _PairModel, Any]] = [
        ("attrition", AttritionPyfunc(), predict_attrition)
    ]
    if pair.csat_booster is not None:
        wrappers.append(("csat", CsatPyfunc(), predict_csat))
    for name, wrapper, predict in wrappers:
        example = example_input(pair, panel, csat=name == "csat")
        # The wrapper is pickled without its pair: the boosters travel as the artifact only.
        output = predict(pair, example)
        with muted():
            info = mlflow.pyfunc.log_model(
                name=name,
                python_model=wrapper,
                artifacts={PAIR_ARTIFACT: pair_dir},
                signature=infer_signature(example, output),
                input_example=example,
                pip_requirements=requirements,
            )
        uris[name] = info.model_uri
    return uris
