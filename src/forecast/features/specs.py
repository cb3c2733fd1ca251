"""Feature specs: the YAML files under `features/` that declare each feature family.

A family names its source table, which signals it takes, and the transforms (with windows)
applied to each; `features.py` turns that into auto-named columns
`{family}__{signal}__{transform}`. This module only reads and validates the files: every
mistake is reported up front, naming the file and the key, before any data is touched.
It never computes features.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from forecast.data.tables import PROTECTED, TABLE_NAMES
from forecast.errors import SpecError

# Team-level measures derived from `employees` (there is no tenure file): the "signals" an
# employees-sourced family may name.
HEADCOUNT_SIGNALS = ("headcount",)
TENURE_SIGNALS = ("tenure",)
EVENT_SIGNALS = ("hires", "transfers_in", "transfers_out", "vol_leavers", "invol_leavers")
LEAVER_SIGNALS = ("transfers_out", "vol_leavers", "invol_leavers")
# The as-of month itself (for seasonality): not from any column, the same for every team.
CALENDAR_SIGNALS = ("month",)
EMPLOYEE_SIGNALS = HEADCOUNT_SIGNALS + TENURE_SIGNALS + EVENT_SIGNALS + CALENDAR_SIGNALS

# Transform kinds per source: monthly tables (engagement, workload, cx) or employees.
# value = (window required?, which employee signals it applies to (None: monthly kinds))
MONTHLY_KINDS: dict[str, bool] = {
    "current": False,  # value this month (NaN when the month is absent)
    "last": False,  # last observed value, carried forward
    "age_months": False,  # months since that observation
    "change": False,  # last observed value minus the one observed before it
    "longrun_mean": False,  # mean of all observations so far (weighted when the family is)
    "mean": True,  # mean over the last `window` months (weighted when the family is)
    "sum": True,  # sum over the last `window` months (e.g. responses)
    "trend": True,  # least-squares slope per month over the last `window` months
    "vs_longrun": False,  # this month's value minus the long-run mean
}
EMPLOYEE_KINDS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "current": (False, HEADCOUNT_SIGNALS),
    "share_lt": (True, TENURE_SIGNALS),  # window = tenure threshold in months
    "median": (False, TENURE_SIGNALS),
    "sum": (True, EVENT_SIGNALS),
    "longrun_rate_shrunk": (False, LEAVER_SIGNALS),
    # headcount now over headcount `window` months earlier, minus 1 (the team's growth)
    "growth": (True, HEADCOUNT_SIGNALS),
    "of_year": (False, CALENDAR_SIGNALS),  # month of the year, 1..12
}
DEFAULT_PRIOR = 120.0  # person-months of organisation-wide evidence a team's rate starts from
ACTIONABLE_FAMILIES = ("workload", "engagement")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
FAMILY_KEYS = {
    "family",
    "label",
    "source",
    "signals",
    "transforms",
    "labels",
    "rename",
    "exclude",
    "opt_in_protected",
    "actionable",
    "weight",
}
TRANSFORM_KEYS = {"kind", "window", "prior", "signals"}


@dataclass(frozen=True)
class Transform:
    kind: str
    window: int | None = None
    # Shrinkage strength (person-months) for `longrun_rate_shrunk`.
    prior: float | None = None
    # Restrict this transform to these columns/signals (may name a non-signal column such as
    # `responses`); None = every signal of the family.
    signals: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        """The transform part of a feature name, e.g. `mean_3m`, `share_lt_6m`, `last`."""
        return f"{self.kind}_{self.window}m" if self.window is not None else self.kind

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.window is not None:
            out["window"] = self.window
        if self.prior is not None:
            out["prior"] = self.prior
        if self.signals is not None:
            out["signals"] = list(self.signals)
        return out


@dataclass(frozen=True)
class FamilySpec:
    family: str
    source: str
    signals: Literal["all_numeric"] | list[str]
    transforms: tuple[Transform, ...]
    labels: dict[str, str] = field(default_factory=dict)
    rename: dict[str, str] = field(default_factory=dict)  # source column -> signal name
    exclude: list[str] = field(default_factory=list)
    opt_in_protected: list[str] = field(default_factory=list)
    actionable: bool = False  # can a leader change it (workload, engagement) or is it history
    weight: str | None = None  # column weighing means (rows without it weigh 1), e.g. responses
    file: str = "<memory>"  # where the spec came from, for error messages only (not hashed)
    label: str = ""  # the family in plain words, for leaders ("Workload")

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "label": self.label,
            "source": self.source,
            "signals": self.signals if isinstance(self.signals, str) else list(self.signals),
            "transforms": [t.to_dict() for t in self.transforms],
            "labels": dict(sorted(self.labels.items())),
            "rename": dict(sorted(self.rename.items())),
            "exclude": list(self.exclude),
            "opt_in_protected": list(self.opt_in_protected),
            "actionable": self.actionable,
            "weight": self.weight,
        }


@dataclass(frozen=True)
class FeatureSpecs:
    families: tuple[FamilySpec, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"families": [f.to_dict() for f in self.families]}

    def hash(self) -> str:
        """sha256 of the canonical content (file locations and YAML formatting do not count)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def family(self, name: str) -> FamilySpec:
        for f in self.families:
            if f.family == name:
                return f
        raise KeyError(name)


def default_spec_dir() -> Path:
    """The repository's `features/` (src layout), else specs shipped inside the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parents[2] / "features", here / "yaml"):
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    return here.parents[2] / "features"


def load_specs(directory: Path | str | None = None) -> FeatureSpecs:
    """Read and validate every `*.yaml` in `directory` (one family per file, sorted by name)."""
    directory = Path(directory) if directory is not None else default_spec_dir()
    files = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    if not files:
        raise SpecError(f"{directory}: no feature specs (*.yaml) found.")
    families = []
    for path in files:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            detail = " ".join(str(exc).split())
            raise SpecError(f"{path.name}: not valid YAML ({detail}).") from None
        families.append(parse_family(raw, path.name))
    return _check_unique(families)


def specs_from_dict(content: dict[str, Any]) -> FeatureSpecs:
    """Rebuild specs from `FeatureSpecs.to_dict()` output (e.g. a registered model's config)."""
    if not isinstance(content, dict) or not isinstance(content.get("families"), list):
        raise SpecError("feature specs must be a mapping with a `families` list.")
    return _check_unique(
        [parse_family(f, f"families[{i}]") for i, f in enumerate(content["families"])]
    )


def _check_unique(families: list[FamilySpec]) -> FeatureSpecs:
    seen: dict[str, str] = {}
    for f in families:
        if f.family in seen:
            raise SpecError(
                f"{f.file}: `family` must be unique across specs. Got {f.family!r} instead "
                f"(also in {seen[f.family]})."
            )
        seen[f.family] = f.file
    return FeatureSpecs(tuple(families))


def _fail(file: str, key: str, expected: str, got: object) -> SpecError:
    return SpecError(f"{file}: `{key}` must be {expected}. Got {got!r} instead.")


def _str_list(file: str, key: str, value: object, *, allow_none: bool = True) -> list[str]:
    if value is None and allow_none:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(file, key, "a list of column names", value)
    return list(value)


def _str_map(file: str, key: str, value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise _fail(file, key, "a mapping of names to text", value)
    return dict(value)


def parse_family(raw: object, file: str) -> FamilySpec:
    """Validate one family mapping; errors name `file` and the offending key."""
    if not isinstance(raw, dict):
        raise SpecError(f"{file}: a feature spec must be a mapping. Got {type(raw).__name__}.")
    unknown = sorted(set(map(str, raw)) - FAMILY_KEYS)
    if unknown:
        raise _fail(file, unknown[0], f"one of {', '.join(sorted(FAMILY_KEYS))}", unknown[0])
    family = raw.get("family")
    if not isinstance(family, str) or not NAME_RE.match(family) or "__" in family:
        raise _fail(file, "family", "a lower-case name without `__` (e.g. workload)", family)
    source = raw.get("source")
    if source not in TABLE_NAMES:
        raise _fail(file, "source", f"one of {', '.join(TABLE_NAMES)}", source)

    signals_raw = raw.get("signals", "all_numeric")
    signals: Literal["all_numeric"] | list[str]
    if signals_raw == "all_numeric":
        signals = "all_numeric"
    else:
        signals = _str_list(file, "signals", signals_raw, allow_none=False)
        if source == "employees":
            for i, s in enumerate(signals):
                if s not in EMPLOYEE_SIGNALS:
                    raise _fail(file, f"signals[{i}]", f"one of {', '.join(EMPLOYEE_SIGNALS)}", s)

    opt_in = _str_list(file, "opt_in_protected", raw.get("opt_in_protected"))
    for i, col in enumerate(opt_in):
        if col.lower() not in PROTECTED:
            raise _fail(
                file,
                f"opt_in_protected[{i}]",
                f"a protected attribute ({', '.join(PROTECTED)}); name other columns in `signals`",
                col,
            )

    transforms_raw = raw.get("transforms")
    if not isinstance(transforms_raw, list) or not transforms_raw:
        raise _fail(
            file, "transforms", "a non-empty list of {kind: ..., window: ...}", transforms_raw
        )
    transforms = tuple(
        _parse_transform(t, file, f"transforms[{i}]", source) for i, t in enumerate(transforms_raw)
    )
    _check_transform_names(transforms, file)

    actionable = raw.get("actionable", family in ACTIONABLE_FAMILIES)
    if not isinstance(actionable, bool):
        raise _fail(file, "actionable", "true or false", actionable)
    weight = raw.get("weight")
    if weight is not None and (not isinstance(weight, str) or not weight):
        raise _fail(file, "weight", "a column name (e.g. responses) or empty", weight)
    if weight is not None and source == "employees":
        raise _fail(file, "weight", "empty for an employees family", weight)

    rename = _str_map(file, "rename", raw.get("rename"))
    for old, new in rename.items():
        if "__" in new or not new:
            raise _fail(file, f"rename.{old}", "a name without `__`", new)
    return FamilySpec(
        family=family,
        source=source,
        signals=signals,
        transforms=transforms,
        labels=_str_map(file, "labels", raw.get("labels")),
        rename=rename,
        exclude=_str_list(file, "exclude", raw.get("exclude")),
        opt_in_protected=opt_in,
        actionable=actionable,
        weight=weight,
        file=file,
        label=_family_label(file, family, raw.get("label")),
    )


def _family_label(file: str, family: str, raw: object) -> str:
    if raw is None:
        return family.replace("_", " ").capitalize()
    if not isinstance(raw, str) or not raw.strip():
        raise _fail(file, "label", "the family in plain words, e.g. Workload", raw)
    return raw.strip()


def _parse_transform(raw: object, file: str, where: str, source: str) -> Transform:
    if not isinstance(raw, dict):
        raise _fail(file, where, "a mapping like {kind: mean, window: 3}", raw)
    unknown = sorted(set(map(str, raw)) - TRANSFORM_KEYS)
    if unknown:
        raise _fail(
            file, f"{where}.{unknown[0]}", f"one of {', '.join(sorted(TRANSFORM_KEYS))}", unknown[0]
        )
    kind = raw.get("kind")
    kinds = EMPLOYEE_KINDS if source == "employees" else MONTHLY_KINDS
    if kind not in kinds:
        raise _fail(file, f"{where}.kind", f"one of {', '.join(kinds)} for source {source}", kind)
    needs_window = EMPLOYEE_KINDS[kind][0] if source == "employees" else MONTHLY_KINDS[kind]
    window = raw.get("window")
    if needs_window:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise _fail(file, f"{where}.window", "an integer >= 1", window)
    elif window is not None:
        raise _fail(file, f"{where}.window", f"absent for kind {kind}", window)
    prior = raw.get("prior")
    if kind == "longrun_rate_shrunk":
        prior = DEFAULT_PRIOR if prior is None else prior
        if isinstance(prior, bool) or not isinstance(prior, int | float) or not prior > 0:
            raise _fail(file, f"{where}.prior", "a number > 0 (person-months)", prior)
        prior = float(prior)
    elif prior is not None:
        raise _fail(file, f"{where}.prior", f"absent for kind {kind}", prior)
    signals = raw.get("signals")
    if signals is not None:
        signals = tuple(_str_list(file, f"{where}.signals", signals, allow_none=False))
        if source == "employees":
            allowed = EMPLOYEE_KINDS[kind][1]
            for i, s in enumerate(signals):
                if s not in allowed:
                    raise _fail(
                        file,
                        f"{where}.signals[{i}]",
                        f"one of {', '.join(allowed)} for kind {kind}",
                        s,
                    )
    return Transform(kind=kind, window=window, prior=prior, signals=signals)


def _check_transform_names(transforms: tuple[Transform, ...], file: str) -> None:
    seen: dict[tuple[str, tuple[str, ...] | None], int] = {}
    for i, t in enumerate(transforms):
        key = (t.name, t.signals)
        if key in seen:
            raise _fail(
                file, f"transforms[{i}]", f"different from transforms[{seen[key]}]", t.to_dict()
            )
        seen[key] = i
