"""Registered model versions: immutable, resolved by number or alias, carrying their evaluation figures.

* `register_checkpoint(ckpt, name)` copies a checkpoint folder into MLflow's own artifact store as a
  LoggedModel (MLflow 3) and registers it as a new version of `name` (``r1ci-<recipe>-sft`` /
  ``r1ci-<recipe>-grpo``, see `registered_name`), with the folder's content fingerprint as a tag and the
  ``candidate`` alias. Retraining writes new artifacts and a new version; no version is ever rewritten.
* `resolve(uri)` gives the local folder of ``models:/<name>/<version>``, ``models:/<name>/latest`` or
  ``models:/<name>@<alias>`` (the ``models:/`` prefix is optional): MLflow's artifacts in place for a local
  store, else downloaded once into a cache folder named by the content fingerprint. A folder whose content
  no longer matches the registered fingerprint is refused.
* `record_evaluation` tags a version with its figures (accuracy per mode and pool); `update_champion` moves
  the ``champion`` alias to the best version evaluated on the same questions.

The registry itself is read and written through `r1ci_core.lineage.registry` (every MLflow call of r1ci is
in `r1ci_core.lineage`).

Load a version with stock MLflow and transformers::

    path = mlflow.artifacts.download_artifacts("models:/r1ci-tiny-sft@champion")
    model = AutoModelForCausalLM.from_pretrained(path)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .lineage import registry

log = logging.getLogger(__name__)

STAGES = ("sft", "grpo")
CANDIDATE, CHAMPION = "candidate", "champion"
FINGERPRINT_TAG = "r1ci.checkpoint_fingerprint"
EVAL_PREFIX = "r1ci.eval."  # figures of the held-out evaluation; r1ci.recheck.* for the fresh-question one
RECHECK_PREFIX = "r1ci.recheck."
ITEMS_TAG = "items"  # under a prefix: the fingerprint of the questions the figures are about
MODEL_TYPE = "transformers-checkpoint"


class VersionError(ValueError):
    """A model URI that names no registered version (or one whose artifacts are unusable)."""


def registered_name(recipe_name: str, stage: str) -> str:
    """``r1ci-<recipe>-<stage>``: every recipe keeps its own version history."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", recipe_name).strip("-") or "recipe"
    return f"r1ci-{safe}-{stage}"


def recipe_model_names(recipe_name: str) -> list[str]:
    return [registered_name(recipe_name, stage) for stage in STAGES]


# ---------------------------------------------------------------------------------------- register
def register_checkpoint(ckpt: Path, name: str, *, tags: Mapping[str, str] | None = None) -> str:
    """Log `ckpt` as a LoggedModel of the active run, register it as a new version of `name`; its number.

    The new version gets the ``candidate`` alias and the tag ``r1ci.checkpoint_fingerprint``; the run gets
    ``r1ci.registered.<name>`` = the version.
    """
    from . import lineage
    from .digest import checkpoint_fingerprint

    if lineage.active_run_id() is None:
        raise RuntimeError("register_checkpoint needs an active MLflow run (lineage.asset_run)")
    fingerprint = checkpoint_fingerprint(ckpt)
    version_tags = {FINGERPRINT_TAG: fingerprint, **(tags or {})}
    version = registry.register_version(ckpt, name, tags=version_tags, model_type=MODEL_TYPE,
                                        description=f"r1ci checkpoints ({name}); one version per training")
    registry.set_alias(name, CANDIDATE, version)
    lineage.set_tag(f"r1ci.registered.{name}", version)
    log.info("registered %s version %s (candidate, fingerprint %s)", name, version, fingerprint)
    return str(version)


# ---------------------------------------------------------------------------------------- resolve
@dataclass
class ResolvedVersion:
    """One registered version and the local folder holding its weights."""

    name: str
    version: str
    path: str
    fingerprint: str | None = None
    aliases: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """``<name>/<version>``, as stored in ``eval_runs.model_version``."""
        return f"{self.name}/{self.version}"


def parse_uri(uri: str) -> tuple[str, str]:
    """(name, selector) of ``[models:/]<name>/<version|latest>`` or ``[models:/]<name>@<alias>``.

    The selector is a version number, ``latest`` or ``@<alias>``.
    """
    rest = uri[len("models:/"):] if uri.startswith("models:/") else uri
    rest = rest.strip("/")
    if "@" in rest:
        name, _, alias = rest.partition("@")
        selector = f"@{alias}"
    else:
        name, _, selector = rest.partition("/")
        selector = selector or "latest"
    if not name or selector == "@" or "/" in selector or not (selector.startswith("@") or selector == "latest"
                                                              or selector.isdigit()):
        raise VersionError(f"cannot read the model URI {uri!r}: write models:/<registered name>/<version>, "
                           "models:/<name>/latest or models:/<name>@<alias> (e.g. @champion, @candidate)")
    return name, selector


def get_version(name: str, selector: str) -> Any:
    """The `ModelVersion` a selector names (see `parse_uri`), or a `VersionError` saying what exists."""
    versions = registry.model_versions(name)
    if not versions:
        raise VersionError(f"registered model {name!r} has no version in the MLflow registry "
                           f"(registered names follow r1ci-<recipe>-sft / -grpo; list them in the MLflow UI)")
    if selector == "latest":
        return max(versions, key=lambda v: int(v.version))
    if selector.startswith("@"):
        alias = selector[1:]
        aliases = registry.aliases(name)
        if alias not in aliases:
            raise VersionError(f"registered model {name!r} has no alias {alias!r} "
                               f"(its aliases: {dict(sorted(aliases.items())) or 'none'})")
        return registry.model_version(name, str(aliases[alias]))
    numbers = sorted(int(v.version) for v in versions)
    if int(selector) not in numbers:
        raise VersionError(f"registered model {name!r} has no version {selector} (versions: {numbers})")
    return registry.model_version(name, selector)


def resolve(uri: str, cache_dir: Path | None = None) -> ResolvedVersion:
    """The version `uri` names and a local folder with exactly its registered weights."""
    name, selector = parse_uri(uri)
    mv = get_version(name, selector)
    fingerprint = (mv.tags or {}).get(FINGERPRINT_TAG)
    path = _local_folder(name, str(mv.version), fingerprint, cache_dir)
    if not Path(path, "config.json").is_file():
        raise VersionError(f"{name} version {mv.version} has no checkpoint in its artifacts ({path}): it was "
                           "registered without weights; re-register it by re-materialising its stage")
    if fingerprint:
        from .digest import checkpoint_fingerprint

        actual = checkpoint_fingerprint(path)
        if actual != fingerprint:
            raise VersionError(f"{name} version {mv.version}: the artifacts at {path} changed since registration "
                               f"(fingerprint {actual}, registered {fingerprint}); delete that folder to download "
                               "them again, or register a new version")
    return ResolvedVersion(name, str(mv.version), str(path), fingerprint, list(mv.aliases or []))


def _local_folder(name: str, version: str, fingerprint: str | None, cache_dir: Path | None) -> str:
    """MLflow's own artifact folder when the store is local, else a download cached by content."""
    uri = f"models:/{name}/{version}"
    location = registry.artifact_location(name, version)
    if location.startswith("file:") or "://" not in location:
        return registry.download_version(name, version)  # a local store: the folder itself, no copy
    from .config import data_dir
    from .io import atomic_dir

    root = Path(cache_dir) if cache_dir else data_dir() / "model_cache"
    target = root / (fingerprint or f"{name}-{version}")
    if not Path(target, "config.json").is_file():
        log.info("downloading %s into %s", uri, target)
        with atomic_dir(target) as tmp:
            registry.download_version(name, version, tmp)
    return str(target)


def find_version(name: str, fingerprint: str) -> str | None:
    """The newest version of `name` registered with this content fingerprint, if any."""
    try:
        versions = registry.model_versions(name)
    except Exception:  # noqa: BLE001 - no registry: no version
        return None
    mine = [int(v.version) for v in versions if (v.tags or {}).get(FINGERPRINT_TAG) == fingerprint]
    return str(max(mine)) if mine else None


def version_numbers(name: str) -> list[int]:
    """Every version number of `name`, ascending (empty when the name is not registered)."""
    return sorted(int(v.version) for v in registry.model_versions(name))


def evaluated_on(name: str, version: str) -> str | None:
    """The fingerprint of the questions of the version's held-out figures (None: never evaluated)."""
    return (registry.model_version(name, version).tags or {}).get(f"{EVAL_PREFIX}{ITEMS_TAG}")


def alias_version(name: str, alias: str) -> str | None:
    """The version `alias` points at, or None (also when `name` is not registered)."""
    try:
        aliases = registry.aliases(name)
    except Exception:  # noqa: BLE001 - unknown name
        return None
    return str(aliases[alias]) if alias in aliases else None


def registry_state(name: str) -> list[list[Any]]:
    """``[[version, questions], ..., [alias, version], ...]`` of `name`, from one registry search and one
    alias read: each version number ascending with the fingerprint of the questions of its held-out figures
    (`evaluated_on`; None: never evaluated), then where ``candidate`` and ``champion`` point (`alias_version`)."""
    versions = sorted(registry.model_versions(name), key=lambda v: int(v.version))
    try:
        aliases = registry.aliases(name) if versions else {}
    except Exception:  # noqa: BLE001 - unknown name
        aliases = {}
    return ([[int(v.version), (v.tags or {}).get(f"{EVAL_PREFIX}{ITEMS_TAG}")] for v in versions]
            + [[alias, str(aliases[alias]) if alias in aliases else None] for alias in (CANDIDATE, CHAMPION)])


# ---------------------------------------------------------------------------------------- figures
def record_evaluation(key: str, figures: Mapping[str, Any], items_fp: str, *, prefix: str = EVAL_PREFIX) -> None:
    """Tag version `key` (``name/version``) with `figures` under `prefix` (replacing that prefix's tags)."""
    name, _, version = key.rpartition("/")
    registry.replace_version_tags(name, version, prefix, {f"{prefix}{tag}": _tag_value(value)
                                                          for tag, value in {**figures, ITEMS_TAG: items_fp}.items()})


def _tag_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)[:5000]
    return str(value)


def update_champion(name: str, items_fp: str, metric: str) -> str | None:
    """Point ``champion`` at the version with the highest `metric` tag (e.g. ``r1ci.eval.autonomous.accuracy``)
    among the versions of `name` evaluated on the questions `items_fp`; ties keep the current champion, then
    the older version. Returns the champion (None when no version has the figure)."""
    scored: list[tuple[float, int]] = []
    for v in registry.model_versions(name):
        tags = v.tags or {}
        if tags.get(f"{EVAL_PREFIX}{ITEMS_TAG}") == items_fp and tags.get(metric) not in (None, "", "None"):
            scored.append((float(tags[metric]), int(v.version)))
    if not scored:
        return None
    current = alias_version(name, CHAMPION)
    best = max(score for score, _ in scored)
    tied = sorted(v for score, v in scored if score == best)
    champion = int(current) if current and int(current) in tied else tied[0]
    if str(champion) != current:
        registry.set_alias(name, CHAMPION, str(champion))
        log.info("%s: champion is now version %s (%s = %.4f; was %s)", name, champion, metric, best, current)
    return str(champion)


def describe(names: Sequence[str]) -> list[dict[str, Any]]:
    """One dict per version of `names`: name, version, aliases and its evaluation tags (for reports)."""
    out = []
    for name in names:
        for v in sorted(registry.model_versions(name), key=lambda v: int(v.version)):
            tags = v.tags or {}
            out.append({"name": name, "version": str(v.version), "aliases": sorted(v.aliases or []),
                        **{t: tags[t] for t in sorted(tags) if t.startswith((EVAL_PREFIX, RECHECK_PREFIX))}})
    return out
