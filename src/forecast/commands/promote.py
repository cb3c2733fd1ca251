"""`forecast promote`: re-run the backtest of champion and challenger on the same data and move
`champion` when the gate allows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from forecast.data.sources import Source, load_tables, open_source
from forecast.errors import ConfigError, ModelError
from forecast.features.targets import build_targets
from forecast.mlops.promotion import (
    Evaluation,
    GateDecision,
    PromotionOutcome,
    attrition_deviance,
    comparison_table,
    gate,
    rerun_backtest,
)
from forecast.mlops.registry import (
    CHALLENGER,
    CHAMPION,
    PairRef,
    get_alias,
    run_config,
    set_pair_alias,
)
from forecast.mlops.tracking import connect


def run_promotion(
    data_dir: Path | str | None = None,
    *,
    force: bool = False,
    tracking_uri: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> PromotionOutcome:
    step = progress or (lambda _message: None)
    # Moves aliases in an existing store; never creates one.
    tracking = connect(tracking_uri, create_experiment=False, read_only=True)
    challenger = get_alias(tracking, CHALLENGER)
    if challenger is None:
        raise ModelError(
            f"no model registered under alias {CHALLENGER} in {tracking.uri}; "
            f"run `forecast train --data DIR` first."
        )
    champion = get_alias(tracking, CHAMPION)
    base = {"challenger": challenger, "tracking_uri": tracking.uri, "data_dir": None}
    if champion is None:
        set_pair_alias(tracking, CHAMPION, challenger)
        return PromotionOutcome(
            champion=None,
            decision=GateDecision(True, "no champion yet"),
            **base,
        )
    if champion.attrition_version == challenger.attrition_version:
        return PromotionOutcome(
            champion=champion,
            decision=GateDecision(False, "already champion"),
            **base,
            note=f"the challenger ({challenger.describe()}) is already the champion.",
        )
    if champion.horizon != challenger.horizon:
        decision = gate(
            champion_horizon=champion.horizon,
            challenger_horizon=challenger.horizon,
            champion_deviance=None,
            challenger_deviance=None,
            force=force,
        )
        set_pair_alias(tracking, CHAMPION, challenger)
        return PromotionOutcome(champion=champion, decision=decision, **base)

    evals = [Evaluation(ref, run_config(tracking, ref)) for ref in (champion, challenger)]
    folder = _data_dir(data_dir, challenger)
    origins = _evaluate(folder, evals, step)
    decision = gate(
        champion_horizon=champion.horizon,
        challenger_horizon=challenger.horizon,
        champion_deviance=evals[0].deviance,
        challenger_deviance=evals[1].deviance,
        force=force,
    )
    if decision.promote:
        set_pair_alias(tracking, CHAMPION, challenger)
    return PromotionOutcome(
        champion=champion,
        challenger=challenger,
        decision=decision,
        data_dir=folder.location,
        tracking_uri=tracking.uri,
        origins=origins,
        comparison=comparison_table(evals),
    )


def _data_dir(data_dir: Path | str | None, challenger: PairRef) -> Source:
    if data_dir is not None:
        return open_source(data_dir)
    recorded = challenger.tags.get("data_dir")
    if not recorded:
        raise ConfigError(
            f"`--data` is required: {challenger.describe()} records no data directory."
        )
    # A directory, a source file, or a URL without its password (the environment has it).
    return open_source(recorded)


def _evaluate(folder: Source, evals: list[Evaluation], step: Callable[[str], None]) -> list[str]:
    """Backtest each configuration once (identical configurations share one run, since the
    backtest is deterministic) and score both on the origins they share."""

    step("reading data")
    tables = load_tables(folder)
    targets = build_targets(tables, int(evals[0].config["horizon"]))
    done: dict[tuple[str, str], Any] = {}
    for ev in evals:
        key = (ev.config["spec_hash"], ev.config["model_config_hash"])
        if key not in done:
            step(f"backtesting {ev.ref.describe()}")
            done[key] = rerun_backtest(tables, ev.config, targets)
        ev.result = done[key]
    origins = sorted(set(evals[0].result.origins) & set(evals[1].result.origins))
    if not origins:
        raise ModelError("the two configurations share no backtest origin on these data.")
    for ev in evals:
        ev.deviance = attrition_deviance(ev.result, origins)
    return origins
