"""The models' configuration (`training/model.yaml`): LightGBM parameters per target, horizon,
early stopping, interval level and the what-if signals to fit; validated up front with the
option or key named. Imports only `forecast.data`, `forecast.features` and `forecast.errors`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from forecast.data.tables import MAX_HORIZON
from forecast.errors import ConfigError, check_param

_REPO_CONFIG = Path(__file__).resolve().parents[3] / "training" / "model.yaml"


# An installed wheel ships the same file inside the package (training_config/ links training/).
DEFAULT_CONFIG_PATH = (
    _REPO_CONFIG
    if _REPO_CONFIG.exists()
    else Path(__file__).resolve().parent / "training_config" / "model.yaml"
)


# Built-in defaults: used when training/model.yaml is not beside the package (an installed
# wheel) and to fill keys an older model.yaml lacks. Keep in step with training/model.yaml.
_TREE_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.1,
    "num_leaves": 7,
    "max_depth": 4,
    "min_data_in_leaf": 200,
    "lambda_l2": 10.0,
    "feature_fraction": 0.7,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "max_bin": 63,
}


DEFAULTS: dict[str, Any] = {
    "horizon": 3,
    "seed": 20240611,
    "num_threads": 2,
    "num_boost_round": 1000,
    "early_stopping_rounds": 50,
    "valid_months": 6,
    "oof_blocks": 4,
    "interval_level": 0.8,
    "risk_quantiles": [0.5, 0.8],
    # Where the attrition model starts: `team_longrun` (the team's own long-run voluntary rate,
    # shrunk toward the organisation's recent rate; the trees learn the deviation from it) or
    # `none` (the organisation's average, as before issue 18).
    "attrition_baseline": "team_longrun",
    "attrition": {"objective": "poisson", **_TREE_DEFAULTS, "min_sum_hessian_in_leaf": 1.0},
    "csat": {"objective": "regression", **_TREE_DEFAULTS},
    # The causal what-if engine fitted by `forecast train` and saved with the pair: `report`
    # (the signals the leaders' report moves for the latest month), `auto` (every settable
    # workload/engagement signal), or a list of signals ([] for none).
    "what_if": {"signals": "report"},
}


# Parameters the code owns: determinism and threading must not be switched off from YAML.
_RESERVED = {"seed", "num_threads", "deterministic", "verbosity", "verbose", "metric"}


BASELINES = ("team_longrun", "none")


_CSAT_OBJECTIVES = {"regression", "regression_l2", "l2", "huber", "fair", "regression_l1", "l1"}


_KNOWN_LGB = {
    "objective",
    "learning_rate",
    "num_leaves",
    "max_depth",
    "min_data_in_leaf",
    "min_sum_hessian_in_leaf",
    "lambda_l1",
    "lambda_l2",
    "min_gain_to_split",
    "feature_fraction",
    "feature_fraction_bynode",
    "bagging_fraction",
    "bagging_freq",
    "max_bin",
    "min_data_in_bin",
    "extra_trees",
    "path_smooth",
    "max_delta_step",
    "huber_delta",
    "fair_c",
    "cat_smooth",
    "cat_l2",
    "max_cat_to_onehot",
    "min_data_per_group",
    "linear_tree",
    "linear_lambda",
    "boosting",
    "poisson_max_delta_step",
    "use_missing",
    "zero_as_missing",
}


@dataclass(frozen=True)
class ModelConfig:
    horizon: int
    attrition: dict
    csat: dict
    num_boost_round: int
    early_stopping_rounds: int
    valid_months: int
    seed: int
    num_threads: int = 2
    oof_blocks: int = 4
    interval_level: float = 0.8
    risk_quantiles: tuple[float, float] = (0.5, 0.8)
    attrition_baseline: str = "team_longrun"
    what_if: dict = field(default_factory=lambda: copy.deepcopy(DEFAULTS["what_if"]))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["risk_quantiles"] = list(self.risk_quantiles)
        return out

    def hash(self) -> str:
        """Stable short hash of the configuration (same parameters, same hash)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> ModelConfig:
        return config_from_dict({**self.to_dict(), **changes})

    def lgb_params(self, target: str) -> dict[str, Any]:
        """LightGBM parameters for `attrition` or `csat`, with the code-owned plumbing.

        LightGBM always runs on one thread, and fits run one after the other:
        OpenMP threads inside one small fit cost more than they save and, on a busy machine,
        can be 50x slower; boosters fitted side by side in threads crashed; and a model fitted
        on one thread is byte-identical whatever the machine's core count. `num_threads` is
        kept for configuration compatibility.
        """
        section = self.attrition if target == "attrition" else self.csat
        return {
            **section,
            "metric": "poisson" if target == "attrition" else "l2",
            "seed": self.seed,
            "num_threads": 1,
            # Same input -> byte-identical model: required for reproducible registry versions.
            "deterministic": True,
            # Row-wise histograms: the same trees as column-wise here (checked), in about 15%
            # less time on these panels (tens of thousands of rows, ~65 features).
            "force_row_wise": True,
            "feature_pre_filter": False,
            "verbosity": -1,
        }


def load_model_config(path: Path | None = None, *, horizon: int | None = None) -> ModelConfig:
    """Read training/model.yaml (or `path`), fill missing keys from the built-in defaults and
    validate every parameter up front."""
    source = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if path is None and not source.exists():
        raw: dict[str, Any] = {}
    else:
        raw = _read_yaml(source)
    merged = copy.deepcopy(DEFAULTS)
    for key, value in raw.items():
        if key in ("attrition", "csat", "what_if") and isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    if horizon is not None:
        merged["horizon"] = horizon
    return config_from_dict(merged, where=str(source))


def config_from_dict(raw: dict[str, Any], *, where: str = "model configuration") -> ModelConfig:
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key `{unknown[0]}` (known: {', '.join(sorted(DEFAULTS))})."
        )
    full = {**copy.deepcopy(DEFAULTS), **raw}
    _validate_scalars(full)
    _validate_section("attrition", full["attrition"], {"poisson"})
    _validate_section("csat", full["csat"], _CSAT_OBJECTIVES)
    _validate_what_if(full["what_if"])
    return ModelConfig(
        horizon=full["horizon"],
        attrition=dict(full["attrition"]),
        csat=dict(full["csat"]),
        num_boost_round=full["num_boost_round"],
        early_stopping_rounds=full["early_stopping_rounds"],
        valid_months=full["valid_months"],
        seed=full["seed"],
        num_threads=full["num_threads"],
        oof_blocks=full["oof_blocks"],
        interval_level=float(full["interval_level"]),
        risk_quantiles=(float(full["risk_quantiles"][0]), float(full["risk_quantiles"][1])),
        attrition_baseline=full["attrition_baseline"],
        what_if={**DEFAULTS["what_if"], **full["what_if"]},
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"model configuration {path} does not exist.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid YAML ({exc}).".replace("\n", " ")) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping of keys to values.")
    return raw


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _int_between(name: str, value: object, lo: int, hi: int) -> None:
    ok = _is_int(value) and lo <= int(value) <= hi  # type: ignore[arg-type]
    check_param(name, value, ok, f"an integer between {lo} and {hi}")


def _validate_scalars(c: dict[str, Any]) -> None:
    _int_between("horizon", c["horizon"], 1, MAX_HORIZON)
    _int_between("seed", c["seed"], 0, 2**31 - 1)
    _int_between("num_threads", c["num_threads"], 1, 256)
    _int_between("num_boost_round", c["num_boost_round"], 1, 100_000)
    _int_between("early_stopping_rounds", c["early_stopping_rounds"], 1, 10_000)
    _int_between("valid_months", c["valid_months"], 1, 60)
    _int_between("oof_blocks", c["oof_blocks"], 2, 24)
    lvl = c["interval_level"]
    check_param("interval_level", lvl, _is_number(lvl) and 0 < lvl < 1, "a number between 0 and 1")
    q = c["risk_quantiles"]
    ok = (
        isinstance(q, list | tuple)
        and len(q) == 2
        and all(_is_number(v) for v in q)
        and 0 < q[0] < q[1] < 1
    )
    check_param("risk_quantiles", q, ok, "two increasing numbers between 0 and 1")
    base = c["attrition_baseline"]
    check_param("attrition_baseline", base, base in BASELINES, "`team_longrun` or `none`")


def _validate_what_if(section: object) -> None:
    if not isinstance(section, dict):
        raise ConfigError("`what_if` must be a mapping (e.g. `signals: report`).")
    for key in section:
        check_param(f"what_if.{key}", key, key in DEFAULTS["what_if"], "one of: signals")
    signals = section.get("signals", "report")
    ok = signals in ("report", "auto") or (
        isinstance(signals, list) and all(isinstance(s, str) and s.strip() for s in signals)
    )
    check_param("what_if.signals", signals, ok, "`report`, `auto` or a list of signal names")


def _validate_section(name: str, section: object, objectives: set[str]) -> None:
    if not isinstance(section, dict):
        raise ConfigError(f"`{name}` must be a mapping of LightGBM parameters.")
    for key, value in section.items():
        if key in _RESERVED:
            raise ConfigError(f"`{name}.{key}` is set by the code (seed, threads, determinism).")
        check_param(f"{name}.{key}", key, key in _KNOWN_LGB, "a known LightGBM parameter")
        if key == "objective":
            expected = " or ".join(sorted(objectives))
            check_param(f"{name}.objective", value, value in objectives, expected)
        elif key in ("num_leaves",):
            _int_between(f"{name}.{key}", value, 2, 4096)
        elif key in ("min_data_in_leaf", "bagging_freq", "max_bin"):
            _int_between(f"{name}.{key}", value, 0 if key == "bagging_freq" else 1, 1_000_000)
        elif key in ("learning_rate", "feature_fraction", "bagging_fraction"):
            ok = _is_number(value) and 0 < value <= 1
            check_param(f"{name}.{key}", value, ok, "a number in (0, 1]")
        elif key in ("lambda_l1", "lambda_l2", "min_sum_hessian_in_leaf", "min_gain_to_split"):
            check_param(f"{name}.{key}", value, _is_number(value) and value >= 0, "a number >= 0")
