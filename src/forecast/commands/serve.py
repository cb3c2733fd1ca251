"""`forecast serve --out-root ROOT [--data DIR] [--users PATH] [--host H] [--port P]`: the
signed-in web view over the months scored under ROOT.

Start-up does the slow parts once: it reads the latest month and builds the whole
organisation's view, and with `--data` reads the data, computes `forecast review`'s rows in
memory (nothing is written under ROOT), loads the registered pair with its stored what-if fits
and warms the engine for the latest month. Requests then only cut, render and answer.

The pair is, by default, the one that scored the latest month (the manifest's model version in
the manifest's tracking store), so a what-if answers with the model behind the figures on the
page; `--model REF` names another in the usual store (MLFLOW_TRACKING_URI, else ./mlruns).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from forecast.commands.review import review_frame
from forecast.commands.what_if import registered_pair
from forecast.data.sources import load_tables
from forecast.errors import ConfigError, ForecastError, OutputError
from forecast.features.specs import load_specs
from forecast.scoring.extras import team_attributes
from forecast.scoring.output import read_manifest
from forecast.scoring.review import REVIEW_FILE
from forecast.scoring.schedule import month_folders
from forecast.serve.app import create_app
from forecast.serve.context import ServeSettings
from forecast.serve.live import LiveWhatIf, WhatIfProcess, WhatIfs
from forecast.serve.users import UserStore
from forecast.serve.views import Served

Say = Callable[[str], None]
SECRET_ENV = "FORECAST_SERVE_SECRET"  # a fixed cookie-signing key (hex), e.g. for tests


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def scored_months(root: Path) -> list[str]:
    return [m for m in month_folders(root) if (root / m / "scores.parquet").is_file()]


@dataclass
class Prepared:
    app: Any  # the FastAPI application
    root: Path
    months: list[str]
    accounts: int
    live: WhatIfs | None
    live_note: str
    review_months: int


def check_binding(host: str, trusted_header: str | None, allow_remote: bool) -> None:
    """With `--trusted-header`, whoever reaches the port can claim any identity: only an SSO
    proxy on this machine may, unless the operator says otherwise."""
    if trusted_header and not is_loopback(host) and not allow_remote:
        raise ConfigError(
            f"`--trusted-header {trusted_header}` trusts whoever can reach the port, so `--host` "
            f"must be a loopback address (127.0.0.1, ::1) behind your SSO proxy. Got {host!r}; "
            f"add `--allow-remote` only if a firewall lets nothing but the proxy in."
        )


def check_port(host: str, port: int) -> None:
    """Fail in a second with one line when the address cannot be listened on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}.") from None


def prepare_serve(
    out_root: Path,
    *,
    data: str | Path | None = None,
    users: Path,
    model: str | None = None,
    settings: ServeSettings | None = None,
    say: Say = lambda _: None,
    warn: Say = lambda _: None,
) -> Prepared:
    root = Path(os.path.abspath(out_root))
    months = scored_months(root) if root.is_dir() else []
    if not months:
        raise OutputError(
            f"{root}: no scored month folders (YYYY-MM with scores.parquet) here; run "
            f"`forecast score --data DIR --out-root {root} --catch-up` first."
        )
    store = UserStore(users)
    accounts = len(store.users())
    if accounts == 0:
        warn(f"{store.path} has no accounts yet: add one with `forecast users add`.")
    latest = months[-1]
    review, live, note, attributes_for = None, None, "", None
    if data is not None:
        live = _start_live(data, root / latest, model)
        tables = load_tables(data)
        review, reviewed, _ = review_frame(tables, root)
        say(f"reviewed {len(reviewed)} month(s) against the data (in memory)")

        def attributes_for(month: str) -> pd.DataFrame:
            return team_attributes(tables.employees, month)

    else:
        path = root / REVIEW_FILE
        review = pd.read_parquet(path) if path.is_file() else None
        note = "the server was started without --data"
    served = Served(root, months, review, attributes_for=attributes_for)
    served.view(latest, None)  # read the latest month and build the whole view once
    if live is not None:
        try:
            choices = live.signals(latest).choices
        except ForecastError as exc:
            warn(f"live what-ifs are off: {exc}")
            choices, note = {}, "the model or its what-if fits could not be loaded"
        if not choices:
            note = note or f"no what-if fit stored with the model can answer as of {latest}"
            live.close()
            live = None
    app = create_app(served, store, live, settings, live_note=note)
    scopes = [None if u.is_analyst else u.scope for u in store.users()]
    threading.Thread(target=served.warm, args=(scopes,), daemon=True, name="warm").start()
    reviewed_months = 0 if review is None else int(review["as_of"].nunique())
    return Prepared(app, root, months, accounts, live, note, reviewed_months)


def pair_reference(latest: Path, model: str | None) -> tuple[str, str | None, str]:
    """(reference, tracking URI or None, words) of the pair for what-ifs: `--model` in the
    usual store, else the pair the latest month's manifest names, in the store it names."""
    if model is not None:
        return model, None, model
    manifest = read_manifest(latest) or {}
    recorded = manifest.get("model") if isinstance(manifest.get("model"), dict) else {}
    version = str((recorded.get("attrition") or {}).get("version", ""))
    if not version:
        raise ConfigError(f"{latest / 'manifest.json'} names no model version; use --model")
    return version, recorded.get("tracking_uri"), f"version {version}"


def build_live(data: str | Path, ref: str, tracking_uri: str | None, name: str) -> LiveWhatIf:
    """The what-if state (in the what-if worker process): the data, the pair, its fits."""
    tables = load_tables(data)
    pair, fits = registered_pair(ref, tracking_uri)
    if not fits:
        raise ConfigError(
            f"the model ({name}) was trained without what-if fits (`forecast train` stores them)"
        )
    return LiveWhatIf(tables, pair, fits, load_specs(), model=name)


def _start_live(data: str | Path, latest: Path, model: str | None) -> WhatIfProcess:
    """Start the what-if worker (it loads while this process reads the months)."""
    ref, uri, name = pair_reference(latest, model)
    return WhatIfProcess(build_live, (data, ref, uri, name), latest.name)


def run_serve(prepared: Prepared, *, host: str, port: int, proxy_headers: bool = True) -> None:
    """Serve until interrupted (uvicorn; one process: sessions live in its memory)."""
    import uvicorn

    try:
        uvicorn.run(
            prepared.app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,  # the audit log in the user store records who asked for what
            proxy_headers=proxy_headers,
            forwarded_allow_ips="127.0.0.1,::1",
            server_header=False,
            # Longer than a proxy's idle timeout (60 s is common), so the proxy, not the server,
            # closes an idle connection: a request sent as the server closes one is lost.
            timeout_keep_alive=65,
        )
    finally:
        if prepared.live is not None:
            prepared.live.close()


__all__ = [
    "Prepared",
    "check_binding",
    "check_port",
    "is_loopback",
    "prepare_serve",
    "run_serve",
]
