"""Aliases: names that route a model's traffic to its versions (promotion, rollback, canary).

An alias (``champion``, ``canary``; a lower-case identifier) of a model points at a *split* of
ready versions, ``{version: weight}`` with weights > 0 summing to 1 (one version is the split
``{v: 1}``), and optionally at a *shadow* version, which is scored and monitored but never
answers. Promotion and rollback are alias moves: :meth:`Aliases.set` replaces the target in one
transaction, audited (who, from, to). A target must be ``ready``: a version that awaits a
retrain or is retired is refused (:class:`UnservableTargetError`).

``default`` is the alias a bare model name uses: while it is unset the newest ready version
answers (the behaviour before aliases); once set it pins the name to its target.

:meth:`Aliases.resolve` turns (model, alias or pinned version, request key) into a
:class:`Route`. With a key, the version is chosen by a keyed hash of it (BLAKE2b of model, alias
and key, read as a number in [0, 1)) against the split's cumulative weights in version order, so
one caller sticks to one version while the alias is unchanged, and growing a canary's share
only moves callers *into* the canary (its interval grows at the top). Without a key the
heaviest version answers (the lower number on a tie): deterministic, so keyless callers — a
batch job, a health check — see the primary version, never a random one.

When an erasure leaves a version an alias routes to ``pending_retrain`` (or a retrain retires
it), resolving to it raises :class:`AliasNotServableError`, which names the version and why,
instead of silently answering from another version; once the version is retrained it answers
again. A shadow that cannot score is dropped from the route (it never answers anyway).

Routes are resolved from memory: alias targets are cached (reloaded after a committed change)
and version statuses are the registry's in-memory mirror, so a resolve costs no statement.

>>> bucket("risk", "canary", "user-42") == bucket("risk", "canary", "user-42")
True
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from store import audit, erasure
from store._clock import now
from store.db import Database, check_name
from store.errors import ModelError, ModelNotServableError, UnknownModelError
from store.registry import PENDING, READY, RETIRED, Registry

DEFAULT = "default"
ALIAS_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
TOLERANCE = 1e-9  # how far a split's weights may sum from 1
RETENTION_KEY = "retention.keep_last"  # store_meta: keep the last N versions of each model


class AliasError(ModelError):
    """A problem with a model alias."""


class InvalidAliasError(AliasError, ValueError):
    """An alias name that is not a short identifier, or a target that is not a valid split
    (weights not > 0 or not summing to 1, a version number that is not an integer, a shadow
    that also answers)."""


class UnknownAliasError(AliasError, LookupError):
    def __init__(self, model: str, alias: str) -> None:
        super().__init__(f"model {model!r} has no alias {alias!r}")


class UnservableTargetError(AliasError, ValueError):
    """An alias moved (promotion, rollback) to a version that awaits a retrain or is retired."""


class AliasNotServableError(ModelNotServableError):
    """An alias routes to a version that cannot answer now (it awaits a retrain after an
    erasure, or was retired): the alias must be moved, or the version retrained."""


class VersionInUseError(ModelError, ValueError):
    """A version an alias routes to (in a split or as shadow) cannot be deleted; or one whose
    retrain checks are still scheduled."""


class InvalidRetentionError(ModelError, ValueError):
    """A retention setting that is not a positive integer (or None)."""


@dataclass(frozen=True)
class AliasTarget:
    """What an alias points at: ``split`` as ``(version, weight)`` pairs in version order,
    the ``shadow`` version or None, and when and by whom it was set."""

    split: tuple[tuple[int, float], ...]
    shadow: int | None
    set_at: str
    set_by: str | None

    @property
    def versions(self) -> tuple[int, ...]:
        """Every version the alias names, answering or shadow."""
        answering = tuple(v for v, _ in self.split)
        return answering if self.shadow is None else (*answering, self.shadow)

    def pick(self, key: str | bytes | None, model: str, alias: str) -> int:
        """The answering version for a request ``key`` (see the module docstring)."""
        if key is None or len(self.split) == 1:
            return min(self.split, key=lambda vw: (-vw[1], vw[0]))[0]
        u = bucket(model, alias, key)
        total = 0.0
        for version, weight in self.split:
            total += weight
            if u < total:
                return version
        return self.split[-1][0]  # u within rounding of 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: ``{"split": {"1": 0.9, "2": 0.1}, "shadow": 3, "set_at", "set_by"}``."""
        return {
            "split": {str(v): w for v, w in self.split},
            "shadow": self.shadow,
            "set_at": self.set_at,
            "set_by": self.set_by,
        }


@dataclass(frozen=True)
class Route:
    """Where one request goes: ``version`` answers, ``shadow`` (or None) is scored alongside.

    ``alias`` is the alias resolved (``"default"`` for a bare model name), None for a pinned
    version."""

    model: str
    alias: str | None
    version: int
    shadow: int | None = None


def route(
    model: str,
    statuses: Mapping[int, str],
    aliases: Mapping[str, AliasTarget],
    *,
    alias: str | None = None,
    key: str | bytes | None = None,
    version: int | None = None,
) -> Route:
    """The route of one request from a model's routing table — each version's status and the
    model's aliases — without the store: what :meth:`Aliases.resolve` does from memory, for a
    server that publishes its own copy of the table.

    >>> t = AliasTarget(((1, 0.5), (2, 0.5)), 3, "2026-12-05T00:00:00+00:00", None)
    >>> ready = {1: READY, 2: READY, 3: READY}
    >>> route("risk", ready, {"canary": t}, alias="canary", key="user-1").shadow
    3
    >>> route("risk", {1: READY, 2: PENDING}, {}).version
    1
    """
    if not statuses:
        raise UnknownModelError(model)
    if version is not None:
        if alias is not None:
            raise InvalidAliasError("pin a version or name an alias, not both")
        v = _version_number(version)
        status = statuses.get(v)
        if status is None:
            raise UnknownModelError(model, v)
        if status != READY:
            raise ModelNotServableError(f"model {model!r} v{v} {_why(status)}")
        return Route(model, None, v, None)
    name = DEFAULT if alias is None else check_alias(alias)
    target = aliases.get(name)
    if target is None:
        if name != DEFAULT:
            raise UnknownAliasError(model, name)
        ready = [v for v, s in statuses.items() if s == READY]
        if not ready:
            raise ModelNotServableError(
                f"no version of model {model!r} can serve: each awaits a retrain or is retired"
            )
        return Route(model, DEFAULT, max(ready), None)
    v = target.pick(key, model, name)
    status = statuses.get(v, RETIRED)
    if status != READY:
        raise AliasNotServableError(
            f"alias {name!r} of model {model!r} routes to v{v}, which {_why(status)}: "
            "it answers again once retrained; or move the alias"
        )
    shadow = target.shadow
    if shadow is not None and statuses.get(shadow) != READY:
        shadow = None
    return Route(model, name, v, shadow)


def bucket(model: str, alias: str, key: str | bytes) -> float:
    """A request key's place in [0, 1): BLAKE2b of model, alias and key, as a 64-bit fraction."""
    raw = key.encode() if isinstance(key, str) else bytes(key)
    h = hashlib.blake2b(digest_size=8, person=b"forget.alias.v1")
    h.update(f"{model}\x00{alias}\x00".encode())
    h.update(raw)
    return int.from_bytes(h.digest(), "big") / 2.0**64


def check_alias(alias: object) -> str:
    if not isinstance(alias, str) or not ALIAS_RE.match(alias):
        raise InvalidAliasError(f"alias name {alias!r} must match {ALIAS_RE.pattern}")
    return alias


def _version_number(v: object) -> int:
    if isinstance(v, str) and v.isdecimal():
        return int(v)
    if isinstance(v, int) and not isinstance(v, bool) and v > 0:
        return v
    raise InvalidAliasError(f"a version is a positive integer, got {v!r}")


def check_split(target: int | str | Mapping[Any, Any]) -> tuple[tuple[int, float], ...]:
    """``target`` (a version, or ``{version: weight}``) as a split in version order."""
    if not isinstance(target, Mapping):
        return ((_version_number(target), 1.0),)
    if not target:
        raise InvalidAliasError("a split names at least one version")
    split: dict[int, float] = {}
    for v, w in target.items():
        version = _version_number(v)
        if version in split:
            raise InvalidAliasError(f"a split names v{version} twice")
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w):
            raise InvalidAliasError(f"the weight of v{version} must be a number, got {w!r}")
        if w <= 0:
            raise InvalidAliasError(f"the weight of v{version} must be > 0, got {w!r}")
        split[version] = float(w)
    total = math.fsum(split.values())
    if abs(total - 1.0) > TOLERANCE:
        raise InvalidAliasError(f"split weights must sum to 1, got {total!r}: {target!r}")
    return tuple(sorted(split.items()))


def _why(status: str) -> str:
    if status == PENDING:
        return "awaits a retrain after an erasure (pending_retrain)"
    if status == RETIRED:
        return "is retired (no rows were left to refit it on)"
    return f"is {status}"  # pragma: no cover - every status is one of the three


class Aliases:
    """The aliases of a store's models, their audited moves and routing."""

    def __init__(self, db: Database, registry: Registry) -> None:
        self.db = db
        self.registry = registry
        self._cache: dict[str, dict[str, AliasTarget]] | None = None

    # ------------------------------------------------------------------ reading
    def _targets(self) -> dict[str, dict[str, AliasTarget]]:
        if self._cache is None:
            cache: dict[str, dict[str, AliasTarget]] = {}
            for model, alias, split, shadow, at, by in self.db.all(
                "SELECT model, alias, split_json, shadow, set_at, set_by FROM model_aliases "
                "ORDER BY model, alias"
            ):
                pairs = tuple((int(v), float(w)) for v, w in json.loads(split))
                target = AliasTarget(pairs, None if shadow is None else int(shadow), at, by)
                cache.setdefault(model, {})[alias] = target
            self._cache = cache
        return self._cache

    def _invalidate(self) -> None:
        self._cache = None

    def _statuses(self, model: str) -> dict[int, str]:
        check_name(model, "model")
        statuses = self.registry.statuses(model)
        if not statuses:
            raise UnknownModelError(model)
        return statuses

    def all(self, model: str) -> dict[str, AliasTarget]:
        """The aliases of ``model``, by name (``default`` only when it was set)."""
        self._statuses(model)
        return dict(self._targets().get(model, {}))

    def referencing(self, model: str, version: int) -> list[str]:
        """The aliases of ``model`` that name ``version`` (answering or shadow)."""
        return sorted(a for a, t in self._targets().get(model, {}).items() if version in t.versions)

    # ------------------------------------------------------------------ moving
    def set(
        self,
        model: str,
        alias: str,
        target: int | str | Mapping[Any, Any],
        shadow: int | str | None,
        by: str | None,
    ) -> AliasTarget:
        """Point ``alias`` at ``target`` (a version or a split), with an optional shadow."""
        check_alias(alias)
        statuses = self._statuses(model)
        split = check_split(target)
        shadow_v = None if shadow is None else _version_number(shadow)
        if shadow_v is not None and shadow_v in dict(split):
            raise InvalidAliasError(f"v{shadow_v} cannot both answer and shadow alias {alias!r}")
        for version in [v for v, _ in split] + ([] if shadow_v is None else [shadow_v]):
            status = statuses.get(version)
            if status is None:
                raise UnknownModelError(model, version)
            if status != READY:
                raise UnservableTargetError(
                    f"cannot point alias {alias!r} of model {model!r} at v{version}: it "
                    f"{_why(status)}"
                )
        at = now()
        new = AliasTarget(split, shadow_v, at, by)
        old = self._targets().get(model, {}).get(alias)
        with self.db.atomic():
            self.db.execute(
                "DELETE FROM model_aliases WHERE model = ? AND alias = ?", [model, alias]
            )
            self.db.execute(
                "INSERT INTO model_aliases VALUES (?, ?, ?, ?, ?, ?)",
                [model, alias, json.dumps([list(p) for p in split]), shadow_v, at, by],
            )
            audit.append(
                self.db,
                "model.alias_set",
                {
                    "model": model,
                    "alias": alias,
                    "from": None if old is None else _audited(old),
                    "to": _audited(new),
                    "by": by,
                },
            )
            self.db.on_commit(self._invalidate)
        return new

    def delete(self, model: str, alias: str, by: str | None) -> None:
        """Remove ``alias`` (``default``: the newest ready version answers again)."""
        check_alias(alias)
        self._statuses(model)
        old = self._targets().get(model, {}).get(alias)
        if old is None:
            raise UnknownAliasError(model, alias)
        with self.db.atomic():
            self.db.execute(
                "DELETE FROM model_aliases WHERE model = ? AND alias = ?", [model, alias]
            )
            audit.append(
                self.db,
                "model.alias_deleted",
                {"model": model, "alias": alias, "from": _audited(old), "by": by},
            )
            self.db.on_commit(self._invalidate)

    # ------------------------------------------------------------------ routing
    def resolve(
        self,
        model: str,
        alias: str | None = None,
        key: str | bytes | None = None,
        version: int | None = None,
    ) -> Route:
        """The route of one request: a pinned ``version``, else ``alias`` (``default`` when
        None) by ``key``. From memory; raises :class:`UnknownAliasError`,
        :class:`~store.errors.UnknownModelError` or a
        :class:`~store.errors.ModelNotServableError`."""
        statuses = self._statuses(model)
        return route(
            model, statuses, self._targets().get(model, {}), alias=alias, key=key, version=version
        )

    # ------------------------------------------------------------------ deleting versions
    def delete_version(self, model: str, version: int, by: str | None) -> None:
        """Delete a version's rows and tombstone it, audited (one transaction); refused while
        an alias names it or its retrain checks are scheduled. Requests that waited only for
        it to be retrained leave ``pending``. The caller compacts the database after."""
        statuses = self._statuses(model)
        v = _version_number(version)
        if v not in statuses:
            raise UnknownModelError(model, v)
        names = self.referencing(model, v)
        if names:
            raise VersionInUseError(
                f"model {model!r} v{v} is routed to by aliases {names}: move or remove them "
                "before deleting it"
            )
        row = self.db.one(
            "SELECT count(*) FROM forget_log WHERE model = ? AND version = ? "
            "AND json_extract_string(evidence_json, '$.status') = 'scheduled'",
            [model, v],
        )
        if row is not None and row[0]:
            raise VersionInUseError(
                f"model {model!r} v{v} has {row[0]} retrain checks scheduled: run a purge "
                "(which records them) before deleting it"
            )
        with self.db.atomic():
            at = now()
            self.registry.delete(model, v, at, by)
            entries: list[tuple[str, Mapping[str, Any]]] = [
                (
                    "model.version_deleted",
                    {"model": model, "version": v, "status": statuses[v], "by": by},
                )
            ]
            entries += erasure.resolve(self.db, at)
            audit.append_many(self.db, entries)

    def retention(self) -> int | None:
        """The store's keep-last-N setting, or None (keep every version)."""
        row = self.db.one("SELECT value FROM store_meta WHERE key = ?", [RETENTION_KEY])
        return None if row is None else int(row[0])

    def set_retention(self, keep_last: int | None, by: str | None) -> None:
        if keep_last is not None and (
            isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1
        ):
            raise InvalidRetentionError(
                f"retention keeps the last N >= 1 versions (or None: all), got {keep_last!r}"
            )
        with self.db.atomic():
            self.db.execute("DELETE FROM store_meta WHERE key = ?", [RETENTION_KEY])
            if keep_last is not None:
                self.db.execute(
                    "INSERT INTO store_meta VALUES (?, ?)", [RETENTION_KEY, str(keep_last)]
                )
            audit.append(self.db, "store.retention_set", {"keep_last": keep_last, "by": by})

    def expired(self, model: str) -> list[int]:
        """The versions of ``model`` retention would delete: all but the newest N, the ones an
        alias names, and the newest ready one (so the bare name keeps answering)."""
        keep_last = self.retention()
        statuses = self._statuses(model)
        if keep_last is None:
            return []
        newest = sorted(statuses, reverse=True)
        kept = set(newest[:keep_last])
        kept.update(v for t in self._targets().get(model, {}).values() for v in t.versions)
        ready = [v for v in newest if statuses[v] == READY]
        kept.update(ready[:1])
        return sorted(v for v in statuses if v not in kept)


def _audited(target: AliasTarget) -> dict[str, Any]:
    return {"split": {str(v): w for v, w in target.split}, "shadow": target.shadow}
