"""The MLflow model registry: registered names, their versions, aliases and version tags.

What a version means for r1ci (fingerprints, evaluation figures, the champion) is `r1ci_core.versions`;
this module only reads and writes the registry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _client() -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def register_version(ckpt: Path, name: str, *, tags: Mapping[str, str], model_type: str, description: str) -> str:
    """Copy `ckpt` into the artifact store as a LoggedModel of the active run and register it as a new version
    of `name` (created with `description` when new), with `tags` on both; the version's number.

    The LoggedModel ends FAILED when its artifacts cannot be copied (and the error goes on), else READY.
    """
    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("registering a model version needs an active MLflow run (lineage.asset_run)")
    model = mlflow.initialize_logged_model(name=name, source_run_id=run.info.run_id, tags=dict(tags),
                                           model_type=model_type)
    client = _client()
    try:
        client.log_model_artifacts(model.model_id, str(ckpt))
    except BaseException:
        mlflow.finalize_logged_model(model.model_id, "FAILED")
        raise
    mlflow.finalize_logged_model(model.model_id, "READY")
    with contextlib.suppress(Exception):  # exists already
        client.create_registered_model(name, description=description)
    version = client.create_model_version(name, source=f"models:/{model.model_id}", run_id=run.info.run_id,
                                          tags=dict(tags), model_id=model.model_id).version
    return str(version)


def model_versions(name: str) -> list[Any]:
    """Every `ModelVersion` of `name` with its tags, in no set order (empty when `name` is not registered).

    The one registry search of r1ci: numbers, the latest version and tag lookups all start from it.
    """
    return list(_client().search_model_versions(f"name='{name}'"))


def model_version(name: str, version: str) -> Any:
    """The `ModelVersion` `version` of `name`, with its tags and aliases."""
    return _client().get_model_version(name, version)


def aliases(name: str) -> dict[str, Any]:
    """{alias: version} of the registered model `name`, as the registry gives them (raises when `name` is
    not registered)."""
    return dict(_client().get_registered_model(name).aliases or {})


def set_alias(name: str, alias: str, version: str) -> None:
    """Point `alias` of `name` at `version`."""
    _client().set_registered_model_alias(name, alias, version)


def replace_version_tags(name: str, version: str, prefix: str, tags: Mapping[str, str]) -> None:
    """Delete the version's tags that start with `prefix`, then set `tags` (full tag names) on it."""
    client = _client()
    for tag in model_version(name, version).tags or {}:
        if tag.startswith(prefix):
            client.delete_model_version_tag(name, version, tag)
    for tag, value in tags.items():
        client.set_model_version_tag(name, version, tag, value)


def artifact_location(name: str, version: str) -> str:
    """Where the store keeps the version's artifacts (a ``file:`` URI or a plain path for a local store)."""
    return _client().get_model_version_download_uri(name, version)


def download_version(name: str, version: str, dst: Path | None = None) -> str:
    """The local folder of the version's artifacts: the store's own folder for a local store when `dst` is
    None, else a copy downloaded into `dst`."""
    import mlflow

    uri = f"models:/{name}/{version}"
    if dst is None:
        return mlflow.artifacts.download_artifacts(uri)
    return mlflow.artifacts.download_artifacts(uri, dst_path=str(dst))
