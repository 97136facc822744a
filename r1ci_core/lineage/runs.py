"""MLflow runs: one per asset materialisation, linked to its upstream runs and inputs; the tracking store."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import MlflowConfig, data_dir
from ..io import pid_alive

log = logging.getLogger(__name__)

UPSTREAM_TAG = "r1ci.upstream_runs"
REPLACES_TAG = "r1ci.replaces"  # the runs of the same asset this attempt found dead and marked KILLED
UI_URL_ENV = "R1CI_MLFLOW_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:5000"  # where `mlflow ui --backend-store-uri sqlite:///data/mlflow.db` listens
CACHE_KEY_TAG = "r1ci.cache_key"  # content key of everything the run's artifact was made from
OUTPUT_DIGEST_TAG = "r1ci.output_digest"  # content digest of the artifact the run left
RESULT_ARTIFACT = "r1ci_stage_result.json"  # the stage's result (path, figures), for runs that reuse it


class TrackingError(RuntimeError):
    """The MLflow tracking store cannot be used."""


def tracking_uri(cfg: MlflowConfig | None = None) -> str:
    """`$MLFLOW_TRACKING_URI`, else the recipe's URI, else sqlite under the data folder."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or (cfg.tracking_uri if cfg else None)
    if uri:
        return uri
    root = data_dir()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def setup(cfg: MlflowConfig) -> str:
    """Point MLflow at the tracking store and make sure the experiment exists; returns its id."""
    import mlflow

    uri = tracking_uri(cfg)
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.get_experiment_by_name(cfg.experiment)
        if experiment is not None:
            return experiment.experiment_id
        location = None
        if uri.startswith("sqlite:"):
            location = (data_dir() / "mlartifacts").as_uri()
        return mlflow.create_experiment(cfg.experiment, artifact_location=location)
    except Exception as err:  # noqa: BLE001 - any store failure becomes one clear line
        raise TrackingError(
            f"cannot reach the MLflow tracking store {uri!r}: {str(err).splitlines()[0][:200]} "
            "(start the server or unset MLFLOW_TRACKING_URI to use the local store)"
        ) from None


def use_tracking_store(cfg: MlflowConfig | None = None) -> None:
    """Outside an active run, point MLflow at the project's store (env, recipe or data-dir sqlite)."""
    import mlflow

    if mlflow.active_run() is None:
        mlflow.set_tracking_uri(tracking_uri(cfg))


def check_reachable(uri: str, timeout_s: float = 3.0) -> None:
    """Fail at once, in one line, when an http(s) tracking server does not accept connections.

    (MLflow's own client would retry with back-off for minutes before giving up.)
    """
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "localhost", port), timeout=timeout_s):
            pass
    except OSError as err:
        raise TrackingError(
            f"cannot reach the MLflow tracking server {uri!r}: {err.strerror or err} "
            "(start the server, fix MLFLOW_TRACKING_URI / mlflow.tracking_uri, or unset both to use the local store)"
        ) from None


@contextlib.contextmanager
def asset_run(
    cfg: MlflowConfig,
    asset_key: str,
    *,
    dagster_run_id: str = "",
    upstream: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """An MLflow run for one asset materialisation, tagged with the Dagster run and upstream runs.

    On an exception the run ends FAILED (KILLED on Ctrl-C / Dagster's interrupt); a process killed outright leaves
    it RUNNING, and `close_stale_runs` marks it KILLED on the next attempt, whose run lists the killed
    run ids in the `r1ci.replaces` tag.
    """
    import mlflow

    experiment_id = setup(cfg)
    replaced = close_stale_runs(experiment_id, asset_key)
    upstream = upstream or {}
    tags = {
        "dagster.run_id": dagster_run_id,
        "dagster.asset_key": asset_key,
        UPSTREAM_TAG: ",".join(f"{k}={v}" for k, v in sorted(upstream.items())),
        "r1ci.pid": str(os.getpid()),
        "r1ci.host": socket.gethostname(),
    }
    if replaced:
        tags[REPLACES_TAG] = ",".join(replaced)
    for name, run_id in upstream.items():
        tags[f"r1ci.upstream.{name}"] = run_id
    run = mlflow.start_run(experiment_id=experiment_id, run_name=asset_key, tags=tags)
    try:
        if params:
            mlflow.log_params(_flatten(params))
        yield run
    except BaseException as err:
        mlflow.end_run("KILLED" if _interrupted(err) else "FAILED")
        raise
    else:
        mlflow.end_run("FINISHED")


def run_url(run_id: str) -> str | None:
    """The run's page in the MLflow UI (``<ui>/#/experiments/<id>/runs/<run>``), None if the run is unknown.

    ``<ui>`` is the tracking server itself when MLflow tracks to http(s); a local store (sqlite, files) has
    no server of its own, so it is ``$R1CI_MLFLOW_UI_URL``, by default ``http://127.0.0.1:5000`` where
    ``mlflow ui --backend-store-uri <the store>`` serves it.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = mlflow.get_tracking_uri()
    try:
        experiment_id = MlflowClient(uri).get_run(run_id).info.experiment_id
    except Exception as err:  # noqa: BLE001 - a missing link must not fail the stage
        log.info("no MLflow UI link for run %s: %s", run_id, str(err).splitlines()[0][:200])
        return None
    base = uri if uri.startswith(("http://", "https://")) else os.environ.get(UI_URL_ENV, DEFAULT_UI_URL)
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


@dataclass
class CachedRun:
    """A finished run whose artifact was made from the same inputs: its id, output digest and stage result."""

    run_id: str
    output_digest: str
    result: dict[str, Any]


def find_cached_run(cfg: MlflowConfig, asset_key: str, cache_key: str) -> CachedRun | None:
    """The newest FINISHED run of `asset_key` recorded (`record_result`) with `cache_key`, if any."""
    import mlflow
    from mlflow.tracking import MlflowClient

    experiment_id = setup(cfg)
    runs = MlflowClient().search_runs(
        [experiment_id],
        filter_string=(f"tags.`dagster.asset_key` = '{asset_key}' and tags.`{CACHE_KEY_TAG}` = '{cache_key}' "
                       "and attributes.status = 'FINISHED'"),
        order_by=["attributes.start_time DESC"], max_results=5,
    )
    for run in runs:
        try:
            result = json.loads(mlflow.artifacts.load_text(f"{run.info.artifact_uri}/{RESULT_ARTIFACT}"))
        except Exception as err:  # noqa: BLE001 - a run whose record is gone is simply not reusable
            log.info("%s: run %s has no readable %s (%s): not reused", asset_key, run.info.run_id,
                     RESULT_ARTIFACT, err)
            continue
        return CachedRun(run.info.run_id, run.data.tags.get(OUTPUT_DIGEST_TAG, ""), result)
    return None


def record_result(cache_key: str, output_digest: str, result: dict[str, Any]) -> None:
    """Tag the active run with its cache key and output digest and store the stage's result beside it."""
    import mlflow

    mlflow.set_tags({CACHE_KEY_TAG: cache_key, OUTPUT_DIGEST_TAG: output_digest})
    mlflow.log_text(json.dumps(result, sort_keys=True, default=str), RESULT_ARTIFACT)


def _interrupted(err: BaseException) -> bool:
    """Ctrl-C, a termination request, or Dagster's own form of them (it raises its interrupt in the step)."""
    return isinstance(err, KeyboardInterrupt | SystemExit) or type(err).__name__ == "DagsterExecutionInterruptedError"


def close_stale_runs(experiment_id: str, asset_key: str) -> list[str]:
    """Mark runs of `asset_key` left RUNNING by a dead process as KILLED; return their ids."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    stale = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`dagster.asset_key` = '{asset_key}' and attributes.status = 'RUNNING'",
    )
    killed = []
    for run in stale:
        pid = int(run.data.tags.get("r1ci.pid", "0") or 0)
        host = run.data.tags.get("r1ci.host")
        if host and host != socket.gethostname():
            continue  # another machine's process: its liveness cannot be told from here
        if pid and pid != os.getpid() and pid_alive(pid):
            continue
        client.set_terminated(run.info.run_id, "KILLED")
        killed.append(run.info.run_id)
    return killed


def log_dataset(ds: Any, path: Path, name: str, context: str = "input") -> None:
    """Log a `datasets.Dataset` as a run input (digest = its fingerprint, source = its folder)."""
    import mlflow

    dataset = mlflow.data.from_huggingface(ds, source=str(path), name=name, digest=ds._fingerprint[:20])
    mlflow.log_input(dataset, context=context)


def register_checkpoint(ckpt: Path, registered_name: str) -> str:
    """Register `ckpt` as a new, immutable version of `registered_name` (see `versions.register_checkpoint`)."""
    from ..versions import register_checkpoint

    return register_checkpoint(ckpt, registered_name)


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = str(value)[:500]
    return out


# ------------------------------------------------------------------------------ the active run
# The stages record their figures through these, so every MLflow call of r1ci is in this package.
def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    import mlflow

    mlflow.log_metrics(metrics, step=step)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    import mlflow

    mlflow.log_metric(key, value, step=step)


def log_params(params: dict[str, Any]) -> None:
    import mlflow

    mlflow.log_params(params)


def log_dict(data: Any, artifact_file: str) -> None:
    import mlflow

    mlflow.log_dict(data, artifact_file)


def set_tag(key: str, value: str) -> None:
    import mlflow

    mlflow.set_tag(key, value)


def active_target() -> dict[str, str] | None:
    """The active run's tracking URI and id (for a subprocess to log into it), None when no run is active."""
    import mlflow

    from .figures import active_run_id

    run_id = active_run_id()
    if run_id is None:
        return None
    return {"tracking_uri": mlflow.get_tracking_uri(), "run_id": run_id}


@contextlib.contextmanager
def resumed_run(target: dict[str, str] | None) -> Iterator[None]:
    """Log into the run `active_target` named (another process's) while inside; left open for its owner."""
    if not target:
        yield
        return
    import mlflow

    mlflow.set_tracking_uri(target["tracking_uri"])
    mlflow.start_run(run_id=target["run_id"])
    try:
        yield
    finally:
        mlflow.end_run()  # the owning process ends the run with its final status
