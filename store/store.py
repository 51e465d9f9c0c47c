"""ModelStore: the embedded model store (subjects, datasets, versioned models, erasure, audit).

One directory holds everything: ``store.duckdb`` (datasets, registry, forget log, requests,
audit log), ``subject.key`` (the pseudonym secret) and ``artifacts/`` (model checkpoints).

The work an erasure leaves behind — retraining versions that could not forget in place, and
the shards a sharded model (:class:`forget.Sharded`) dropped while it kept serving, rewriting
artifacts, compacting the database — is done by :meth:`ModelStore.purge`, which
``erase(purge=True)`` (the default), :meth:`ModelStore.close` and a recovering
:meth:`ModelStore.open` call; a service that wants fast erasures passes ``purge=False`` and
calls :meth:`ModelStore.purge` in the background.

Retrain checks (evidence) run inside the erasure, or with ``erase(evidence="deferred")`` are
scheduled by it and run later, in three phases for a caller that holds a lock around the store
(see :mod:`store.evidence`): :meth:`ModelStore.evidence_jobs` and
:meth:`ModelStore.record_evidence` under the lock, :meth:`~store.evidence.EvidenceJob.run`
outside it. :meth:`ModelStore.purge` (hence ``close``) runs the outstanding ones inline.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import numpy as np

from store import access as _access
from store import (
    audit,
    data,
    erasure,
    exports,
    migrations,
    reports,
    retrain,
    sources,
    stages,
)
from store import evidence as _evidence
from store import journal as _journal
from store import purposes as _purposes
from store import retention as _retention
from store._clock import now
from store.aliases import Aliases, AliasTarget, Route, VersionInUseError
from store.artifacts import Artifacts
from store.audit import AuditHead, AuditVerification
from store.data import Appended, DatasetInfo, DeletedRows, Records
from store.db import Database
from store.erasure import ErasureReceipt, PurgeResult
from store.errors import (
    ModelNotServableError,
    PredictInputError,
    StoreClosedError,
    StoreCorruptError,
    StoreNotFoundError,
    StoreReadOnlyError,
    UnknownSubjectError,
)
from store.evidence import INLINE, EvidenceJob
from store.exports import ExportRecord
from store.registry import READY, ModelVersion, Registry, ShardJob, ShardRetrain
from store.retrain import RetrainResult
from store.subjects import KEY_FILE, Subject, SubjectKeys

# what an objection, a restriction or its lift answers with (see ModelStore._withholding)
_R = TypeVar("_R", _purposes.ObjectionReceipt, _purposes.RestrictionReceipt)


class ModelStore:
    """An embedded store of datasets and unlearnable models that honours erasure requests.

    Open it with :meth:`open`; use it from one thread; one process may hold it at a time.

    Examples
    --------
    >>> import tempfile
    >>> from forget.linear import LinearRegression
    >>> from store import ModelStore
    >>> rows = [{"subject_id": f"s{i}", "x": float(i), "y": 2.0 * i + 1} for i in range(6)]
    >>> with ModelStore.open(tempfile.mkdtemp()) as st:
    ...     _ = st.ingest("people", rows, subject_column="subject_id")
    ...     v = st.train("line", dataset="people", estimator=LinearRegression(),
    ...                  label="y", features=["x"])
    ...     r = st.erase("s5", legal_ground="art17-1-b")
    ...     y10 = float(st.predict("line", [{"x": 10.0}])[0])
    ...     added = st.append("people", [{"subject_id": "s6", "x": 6.0, "y": 13.0}])
    ...     summary = st.summary_report()
    ...     (v.version, r.status, r.rows_erased, round(y10, 6))
    ...     (added.first_row_id, summary["by_status"]["completed"], summary["overdue"]["count"])
    (1, 'completed', 1, 21.0)
    (7, 1, 0)
    """

    def __init__(
        self,
        directory: Path,
        db: Database,
        keys: SubjectKeys,
        registry: Registry,
        evidence_rate: float = 1.0,
    ):
        self.directory = directory
        self._db = db
        self._keys = keys
        self._registry = registry
        self._closed = False
        self._read_only = False
        self._evidence_rate = _evidence.check_rate(evidence_rate)
        self._journal = _journal.Journal(directory)
        # called with the groups each settle recorded, on the thread that settles (a server
        # takes their rows out of its drift references there, off the answer's path)
        self.on_settled: Callable[[Sequence[erasure.Group]], None] | None = None

    @property
    def evidence_rate(self) -> float:
        """The share of erasure requests checked against a retrain when ``erase`` is given no
        ``verify`` (a keyed random sample; 1 checks every request). Settable."""
        return self._evidence_rate

    @evidence_rate.setter
    def evidence_rate(self, rate: float) -> None:
        self._evidence_rate = _evidence.check_rate(rate)

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        evidence_rate: float = 1.0,
        read_only: bool = False,
        create: bool = True,
    ) -> ModelStore:
        """Create or open the store in ``directory``, recovering from any crash.

        With ``create=False`` a directory that holds no store is refused
        (:class:`~store.errors.StoreNotFoundError`) instead of becoming a new, empty store: what
        every ``forget`` command but ``ingest`` does, so a mistyped ``--store`` is an error,
        not a fresh store that "verifies" and "erases" nothing.

        Recovery: models are loaded from their checkpoints and the later ``forget_log``
        entries replayed; requests erased but not yet purged are purged now; copies of
        uploads that older versions left in the directory are deleted.
        ``evidence_rate`` (0 to 1) is the share of erasure requests whose models are checked
        against a retrain (a keyed random sample; see :mod:`store.evidence`).

        ``read_only`` opens an existing, up-to-date store to inspect it (audit verification,
        reports, lookups) and changes nothing in its directory: no recovery, purge, migration
        or cleanup, a read-only DuckDB connection, and no models in memory (methods that
        write, or predict, raise :class:`~store.errors.StoreReadOnlyError`).
        Raises :class:`~store.errors.StoreLockedError` if another process has it open.
        """
        rate = _evidence.check_rate(evidence_rate)
        d = Path(directory)
        if d.exists() and not d.is_dir():
            raise StoreNotFoundError(f"{d} is a file, not a store directory")
        if read_only or not create:
            cls.find(d)
        if read_only:
            return cls._open_read_only(d, rate)
        d.mkdir(parents=True, exist_ok=True)
        new = not (d / Database.FILE).exists()
        if not new and not (d / KEY_FILE).exists():
            raise StoreCorruptError(f"{d / KEY_FILE} is missing; pseudonyms cannot be derived")
        db = Database.open(d)
        try:
            keys = SubjectKeys.load(d, create=True)
            db.audit_key = audit.AuditKey.derive(keys)
            with db.atomic():
                applied = migrations.apply(db)
                if migrations.FIRST in applied:  # this transaction creates the store
                    audit.start(db, {"schema": max(migrations.MIGRATIONS)})
            swept = sources.sweep_uploads(d)
            if swept:
                with db.atomic():
                    audit.append(db, "store.uploads_swept", {"files": swept})
            registry = Registry(db, Artifacts(d))
            registry.sweep()
            erasure.recover(db, registry)
            _journal.replay(d, db, registry)
            store = cls(d, db, keys, registry, rate)
            if erasure.pending_purge(db) or registry.shards_pending():
                store.purge()
        except BaseException:
            db.close()
            raise
        return store

    @staticmethod
    def find(directory: str | os.PathLike[str]) -> Path:
        """``directory`` if it holds a store; else :class:`~store.errors.StoreNotFoundError`."""
        d = Path(directory)
        if not (d / Database.FILE).is_file():
            raise StoreNotFoundError(
                f"no store in {d} ({Database.FILE} is missing): check the path, or create the "
                "store with `forget ingest` (or `forget serve --create`)"
            )
        return d

    @classmethod
    def _open_read_only(cls, d: Path, rate: float) -> ModelStore:
        keys = SubjectKeys.load(d, create=False)
        db = Database.open(d, read_only=True)
        try:
            db.audit_key = audit.AuditKey.derive(keys)
            outdated = migrations.pending(db)
            if outdated:
                raise StoreReadOnlyError(
                    f"store {d} needs migrations {outdated}: open it for writing once to "
                    "upgrade it (a read-only open changes nothing)"
                )
            if _journal.unrecorded(d, db):
                raise StoreReadOnlyError(
                    f"store {d} holds erasures that were answered but not yet recorded (its "
                    "server stopped before recording them): open it for writing once to record "
                    "them (a read-only open changes nothing, and would not show them)"
                )
            store = cls(d, db, keys, Registry(db, Artifacts(d, create=False)), rate)
        except BaseException:
            db.close()
            raise
        store._read_only = True
        return store

    @property
    def read_only(self) -> bool:
        """Whether the store was opened with ``read_only=True``."""
        return self._read_only

    def close(self) -> None:
        """Retrain pending versions and purge what awaits it (see :meth:`purge`), checkpoint
        the models, close the database."""
        if self._closed:
            return
        if self._read_only:
            self._closed = True
            self._db.close()
            return
        try:
            self.settle()
            if (
                erasure.pending_purge(self._db)
                or self._registry.pending()
                or self._registry.shards_pending()
                or _evidence.outstanding(self._db)
            ):
                self.purge()
            else:
                self._registry.checkpoint()
        finally:
            self._closed = True
            self._journal.close()
            self._db.close()

    def __enter__(self) -> ModelStore:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"store {self.directory} is closed")

    def _live(self) -> Database:
        """The database, with every answered erasure recorded in it (:meth:`settle`)."""
        self._check_open()
        if len(self._journal):
            self.settle()
        return self._db

    def settle(self) -> int:
        """Record the erasures :meth:`erase_now` answered and the database lacks (see
        :mod:`store.journal`), in one transaction; how many requests. Every other method
        does this first; a server runs it on a thread of its own, beside ``erase_now``."""
        groups = self._journal.apply(self._db, self._registry, self.on_settled)
        return sum(len(g.receipts) for g in groups)

    def prepare_erasures(self) -> None:
        """Read what :meth:`erase_now` needs in memory (the catalogue, the model states), open
        its reading connection and the journal, and run its read once for no one: the first
        erasure then costs what the hundredth does."""
        db = self._live()
        cat = data.catalog(db)
        self._registry.pending()  # the versions' states, read once
        data.read_subjects(db.reader(), cat, [self._keys.subject("\x00warm-up")])
        self._journal.open()

    @property
    def unsettled(self) -> int:
        """Erasure groups answered by :meth:`erase_now` and not yet recorded."""
        return len(self._journal)

    def _writable(self, what: str) -> Database:
        db = self._live()
        if self._read_only:
            raise StoreReadOnlyError(f"store {self.directory} is open read-only: cannot {what}")
        return db

    def _models(self, what: str) -> Database:
        self._check_open()
        db = self._db
        if self._read_only:
            raise StoreReadOnlyError(
                f"store {self.directory} is open read-only, without models in memory: cannot {what}"
            )
        return db

    # ------------------------------------------------------------------ data
    def ingest(
        self, name: str, source: str | os.PathLike[str] | Records | Any, *, subject_column: str
    ) -> DatasetInfo:
        """Create dataset ``name`` from a ``.csv``/``.parquet`` path, CSV in a file-like object
        (``io.StringIO``: read in memory, never written to a file), list of dicts, dict of
        columns, or a data frame (pandas, polars, pyarrow ``Table``: scanned by DuckDB).

        Subject ids are kept as text exactly as written, and may not be empty: a CSV subject
        column is read as text (``1.50`` stays ``1.50``); any other source's must hold text
        already, or :class:`~store.errors.SubjectColumnError` says to cast it (the caller
        decides how a number is written, and erases with that). ``row_id`` is reserved.
        """
        return data.ingest(self._writable("ingest a dataset"), name, source, subject_column)

    def append(self, name: str, source: str | os.PathLike[str] | Records | Any) -> Appended:
        """Add rows (any source :meth:`ingest` takes) to dataset ``name``, with new row ids.

        The rows must have the dataset's columns; integers may fill a ``DOUBLE`` column, other
        type changes raise :class:`~store.errors.SchemaMismatchError`. Existing model versions
        keep their training rows (train a new version to use the new ones).
        """
        return data.append(self._writable("append rows"), name, source)

    def drop_dataset(self, name: str) -> int:
        """Drop a dataset no model version was trained on, and compact the database so that
        its bytes leave the disk; the number of rows it held.

        Raises :class:`~store.errors.DatasetInUseError` when a model version names it.
        """
        rows = data.drop(self._writable("drop a dataset"), name)
        erasure.purge(self._db, self._registry, force=True)
        return rows

    def dataset(self, name: str) -> DatasetInfo:
        return data.get(self._live(), name)

    def datasets(self) -> list[DatasetInfo]:
        db = self._live()
        return [data.get(db, n) for n in data.names(db)]

    def find_subject(self, subject_id: str) -> dict[str, int]:
        """How many rows the subject has in each dataset that holds any (Art. 15 lookups)."""
        subject = self._keys.subject(subject_id)
        rows = data.subject_rows(self._live(), subject)
        return {name: len(ids) for name, ids in rows.items()}

    def subject_key(self, subject_id: str) -> str:
        """The pseudonym the store uses for ``subject_id`` in reports and the audit log."""
        return self._keys.subject(subject_id).key

    def access(self, subject_id: str) -> dict[str, Any]:
        """What the store holds on a subject and did with it (Art. 15), JSON-able: the rows
        in each dataset (every column: the Art. 20 export), the model versions trained on
        them and whether they serve, what each version did for the subject's erasure
        requests, the exported copies that carry the subject's influence, and the requests.
        See :mod:`store.access`.

        Audited as one ``subject.access`` entry (the pseudonym and counts, never the id),
        written with the reads in one transaction, also when nothing is found: then
        :class:`~store.errors.UnknownSubjectError` (no rows, no request). Raises
        :class:`~store.errors.InvalidSubjectError` for an empty or non-string id, and
        :class:`~store.errors.StoreReadOnlyError` on a read-only store (it cannot audit).

        Examples
        --------
        >>> import tempfile
        >>> from forget.linear import LinearRegression
        >>> rows = [{"subject_id": f"s{i}", "x": float(i), "y": 2.0 * i + 1} for i in range(6)]
        >>> with ModelStore.open(tempfile.mkdtemp()) as st:
        ...     _ = st.ingest("people", rows, subject_column="subject_id")
        ...     _ = st.train("line", dataset="people", estimator=LinearRegression(),
        ...                  label="y", features=["x"])
        ...     doc = st.access("s2")
        ...     (doc["datasets"][0]["records"], [(m["model"], m["served"]) for m in doc["models"]])
        ([{'subject_id': 's2', 'x': 2.0, 'y': 5.0}], [('line', True)])
        """
        db = self._writable("record an access request")
        subject = self._keys.subject(subject_id)
        with db.atomic():
            doc = _access.access(db, self._registry, self._alias_book, subject)
            audit.append(db, _access.ACCESS, _access.audit_payload(doc))
        if not doc["found"]:
            raise UnknownSubjectError()
        return doc

    # ------------------------------------------------------------------ models
    def train(
        self,
        name: str,
        *,
        dataset: str,
        estimator: Any,
        label: str,
        features: Sequence[str],
        purpose: str | None = None,
    ) -> ModelVersion:
        """Fit a clone of ``estimator`` on the dataset's rows; register it as a new version.

        ``purpose`` (a lower-case name, ``marketing``) is what the version is processed for;
        None is *unspecified*. The rows of restricted subjects, and of subjects who objected
        to ``purpose``, are left out (counted in ``rows_withheld``; see
        :mod:`store.purposes`).
        """
        db = self._writable("train a model")
        if purpose is not None:
            _purposes.check_purpose(purpose)
        info = data.get(db, dataset)
        withheld = _purposes.withheld(db, self._keys, info.name, purpose)
        mv = self._registry.train(name, info, estimator, label, features, purpose, withheld)
        self._apply_retention(name)
        return mv

    def get_model(self, name: str, version: int | None = None) -> ModelVersion:
        """A version (the newest when ``version`` is None) with its lineage."""
        self._live()
        return self._registry.get(name, version)

    def serving(self, name: str) -> tuple[ModelVersion, Any]:
        """The version the bare name ``name`` routes to (its ``default`` alias; while that is
        unset, the newest ready version) and its in-memory model.

        The model object changes in place when it forgets: read it under the same lock as
        :meth:`erase` if other threads erase. Raises
        :class:`~store.errors.ModelNotServableError` when that version awaits a retrain or is
        retired (every version, without a ``default`` alias).
        """
        self._models("serve")
        self._live()
        if not self._alias_book.all(name):
            return self._registry.serving(name)
        version = self.resolve(name).version
        return self._registry.get(name, version), self._registry.estimator(name, version)

    def estimator(self, name: str, version: int) -> Any | None:
        """A version's in-memory model, or None while it awaits a retrain or is retired."""
        self._models("give a model")
        return self._registry.estimator(name, version)

    def list_models(self) -> list[ModelVersion]:
        self._live()
        return self._registry.versions()

    def training_row_ids(self, name: str, version: int) -> np.ndarray:
        """The row ids that trained a version, less the erased ones once they are purged."""
        self._live()
        return self._registry.training_row_ids(name, version)

    def training_data(self, name: str, version: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row ids, features and labels of a version's training rows still in its dataset
        (erased rows are gone), in the version's feature order."""
        self._live()
        return self._registry.training_data(self._registry.get(name, version))

    def predict(
        self, name: str, rows: Sequence[Mapping[str, Any]] | Any, *, version: int | None = None
    ) -> np.ndarray:
        """Predictions of the version the bare name routes to (see :meth:`serving`), or of
        ``version``.

        ``rows``: a list of dicts keyed by feature name, or a 2-d array in feature order.
        """
        self._models("predict")
        self._live()
        if version is None:
            mv, est = self.serving(name)
        else:
            mv = self._registry.get(name, version)
            est = self._registry.estimator(name, mv.version)
            if est is None:
                raise ModelNotServableError(f"model {name!r} v{mv.version} awaits a retrain")
        return np.asarray(est.predict(_matrix(rows, mv.features)))

    def predict_models(
        self, names: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> dict[str, np.ndarray]:
        """Predictions of several models (each the version its bare name routes to) for the
        same rows, keyed by name: the rows, dicts keyed by feature name, are read once, into
        one matrix per distinct feature list (:mod:`store.stages`)."""
        self._models("predict")
        self._live()
        if len(set(names)) != len(names) or not names:
            raise PredictInputError("name each model once, at least one")
        if not (isinstance(rows, Sequence) and all(isinstance(r, Mapping) for r in rows)):
            raise PredictInputError("rows must be dicts keyed by feature name")
        served = [self.serving(name) for name in names]
        p = stages.plan([mv.features for mv, _ in served])
        by_features = p.split(_matrix(rows, p.union))
        return {
            name: np.asarray(est.predict(by_features[mv.features]))
            for name, (mv, est) in zip(names, served, strict=True)
        }

    # ------------------------------------------------------------------ aliases, deletion
    @property
    def _alias_book(self) -> Aliases:
        book: Aliases | None = self.__dict__.get("_aliases")
        if book is None:
            book = self.__dict__["_aliases"] = Aliases(self._db, self._registry)
        return book

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int | str | Mapping[Any, Any],
        *,
        shadow: int | str | None = None,
        by: str | None = None,
    ) -> AliasTarget:
        """Point ``alias`` of model ``name`` at a version, or a split ``{version: weight}``
        (weights > 0 summing to 1), with an optional ``shadow`` version (scored, not
        answered): a promotion, a rollback or a canary. Audited with ``by`` and the previous
        target. Every version named must be ready (see :mod:`store.aliases` for the errors).
        """
        self._writable("set an alias")
        return self._alias_book.set(name, alias, version, shadow, by)

    def delete_alias(self, name: str, alias: str, *, by: str | None = None) -> None:
        """Remove an alias (audited); without ``default`` the newest ready version answers."""
        self._writable("remove an alias")
        self._alias_book.delete(name, alias, by)

    # ------------------------------------------------------------------ exported copies
    def export(
        self,
        name: str,
        version: int | None = None,
        *,
        recipient: str,
        format: str = "onnx",
        by: str | None = None,
    ) -> tuple[bytes, ExportRecord]:
        """A copy of a version (the one the bare name routes to by default) at its current
        revision, for ``recipient``, and its record: the store keeps who received which
        revision (and the bytes' SHA-256, never the bytes), so that an erasure can name the
        recipients to notify (Art. 19; :mod:`store.exports`). Audited as ``model.exported``.
        Raises :class:`~store.exports.ExportError` for a model with no exported form (kNN:
        it would carry its training rows) or without the ``exchange`` extra."""
        db = self._writable("export a model")
        exports.check_recipient(recipient)
        exports.check_format(format)
        if version is None:
            mv, est = self.serving(name)
        else:
            mv = self._registry.get(name, version)
            est = self._registry.estimator(name, mv.version)
            if est is None:
                raise ModelNotServableError(
                    f"model {name!r} v{mv.version} cannot be exported now: it is {mv.status}"
                )
        try:
            from forget.exchange import NotExportableError, to_onnx
        except ImportError as exc:  # pragma: no cover - the extra is installed with the tests
            raise exports.ExportError(
                "ONNX export needs the exchange extra: pip install 'forget[exchange]'"
            ) from exc
        revision = self._registry.revision(name, mv.version)
        meta = {"model": name, "version": str(mv.version), "revision": str(revision)}
        try:
            blob = to_onnx(est, name=name, metadata=meta | {"recipient": recipient})
        except NotExportableError as exc:
            raise exports.ExportError(str(exc)) from exc
        except ImportError as exc:  # onnx itself missing
            raise exports.ExportError(
                "ONNX export needs the exchange extra: pip install 'forget[exchange]'"
            ) from exc
        rec = exports.record(db, name, mv.version, revision, recipient, format, blob, by)
        return blob, rec

    def exports(self, name: str | None = None) -> list[dict[str, Any]]:
        """The latest copy each recipient holds of each version (of ``name``), marked
        ``stale`` with the action to take when the version moved past it (an erasure) or can
        no longer serve."""
        db = self._live()
        current: dict[tuple[str, int], int | None] = {}
        for mv in self._registry.versions():
            current[(mv.name, mv.version)] = (
                self._registry.revision(mv.name, mv.version) if mv.status == READY else None
            )
        return exports.copies(db, current, name)

    def aliases(self, name: str) -> dict[str, AliasTarget]:
        """The aliases of model ``name`` and their targets."""
        self._live()
        return self._alias_book.all(name)

    def resolve(
        self,
        name: str,
        alias: str | None = None,
        *,
        key: str | bytes | None = None,
        version: int | None = None,
    ) -> Route:
        """Which version answers a request to model ``name`` (and which shadows it): a pinned
        ``version``, else ``alias`` (``default`` when None) chosen by the request ``key``
        (sticky per key), or the heaviest version of a split without one. Costs no statement.
        Raises :class:`~store.errors.ModelNotServableError` (an
        :class:`~store.aliases.AliasNotServableError` for an alias) when that version awaits a
        retrain or is retired. Pass ``route.version`` to :meth:`estimator`.

        Examples
        --------
        >>> import tempfile
        >>> from forget.linear import LinearRegression
        >>> rows = [{"subject_id": f"s{i}", "x": float(i), "y": 2.0 * i + 1} for i in range(6)]
        >>> with ModelStore.open(tempfile.mkdtemp()) as st:
        ...     _ = st.ingest("people", rows, subject_column="subject_id")
        ...     for _ in range(2):
        ...         _ = st.train("line", dataset="people", estimator=LinearRegression(),
        ...                      label="y", features=["x"])
        ...     _ = st.set_alias("line", "canary", {1: 0.9, 2: 0.1}, by="ops")
        ...     route = st.resolve("line", "canary", key="user-17")
        ...     same = st.resolve("line", "canary", key="user-17") == route
        ...     (st.resolve("line").version, st.resolve("line", "canary").version, same)
        (2, 1, True)
        """
        self._live()
        return self._alias_book.resolve(name, alias, key, version)

    def delete_version(self, name: str, version: int, *, by: str | None = None) -> ModelVersion:
        """Delete a model version: its artifacts, its row, its training rows' link, the erased
        row ids its log still held; then compact the database, so that none of its bytes stay
        on disk. Audited; its number is never reused; its ``forget_log`` entries stay as the
        record of the erasures it took part in. Refused
        (:class:`~store.aliases.VersionInUseError`) while an alias names it. Returns the
        version as it was."""
        db = self._writable("delete a model version")
        mv = self._registry.get(name, version)
        if _evidence.outstanding(db):
            self.collect_evidence()  # a version's checks are recorded before it goes
        self._alias_book.delete_version(name, mv.version, by)
        erasure.purge(db, self._registry, force=True)
        return mv

    @property
    def retention(self) -> int | None:
        """Keep the last N versions of each model (None: keep all). Applied after each
        training: older versions are deleted (:meth:`delete_version`), except those an alias
        names and the newest ready one. Stored in the store; set with :meth:`set_retention`."""
        self._live()
        return self._alias_book.retention()

    def set_retention(self, keep_last: int | None, *, by: str | None = None) -> list[ModelVersion]:
        """Set the retention (audited) and apply it to every model now; the deleted versions."""
        self._writable("set the retention")
        self._alias_book.set_retention(keep_last, by)
        deleted = []
        for name in sorted({mv.name for mv in self._registry.versions()}):
            deleted += self._apply_retention(name, compact=False)
        if deleted:
            erasure.purge(self._db, self._registry, force=True)
        return deleted

    def _apply_retention(self, name: str, *, compact: bool = True) -> list[ModelVersion]:
        book = self._alias_book
        expired = book.expired(name)
        if not expired:
            return []
        if _evidence.outstanding(self._db):
            self.collect_evidence()
        deleted = []
        for v in expired:
            mv = self._registry.get(name, v)
            try:
                book.delete_version(name, v, "retention")
            except VersionInUseError:  # checks that wait for its retrain: kept until then
                continue
            deleted.append(mv)
        if deleted and compact:
            erasure.purge(self._db, self._registry, force=True)
        return deleted

    # ------------------------------------------------------------------ objection, restriction
    def declare_purpose(self, purpose: str, *, by: str | None = None) -> bool:
        """Declare a processing purpose (audited), so that objections to it are recorded
        before any model is trained for it; False when it was known already."""
        return _purposes.declare(self._writable("declare a purpose"), purpose, by)

    def purposes(self) -> list[str]:
        """The known purposes: declared, or named by a model version."""
        return _purposes.names(self._live())

    def objection_counts(self) -> dict[str, int]:
        """How many subjects objected to each purpose (none listed: none objected)."""
        return _purposes.objection_counts(self._live())

    def object_to(
        self,
        subject_id: str,
        purpose: str,
        *,
        by: str | None = None,
        purge: bool = True,
        before_forget: Callable[[Sequence[tuple[str, int]]], None] | None = None,
    ) -> _purposes.ObjectionReceipt:
        """The subject objects to ``purpose`` (Art. 21): every version of that purpose forgets
        the subject's rows, exactly as for an erasure; other purposes and unspecified versions
        keep them; the data stays; later training for ``purpose`` leaves them out.

        A repeat answers with the earlier objection (``repeat``). Raises
        :class:`~store.errors.UnknownPurposeError` for a purpose never declared or trained
        for, :class:`~store.errors.UnknownSubjectError` when the store holds no row of the
        subject. With ``purge`` a version that could not forget in place is retrained before
        this returns. ``before_forget``: as :meth:`erase`'s.

        Examples
        --------
        >>> import tempfile
        >>> from forget.linear import LinearRegression
        >>> rows = [{"subject_id": f"s{i}", "x": float(i), "y": 2.0 * i + 1} for i in range(6)]
        >>> with ModelStore.open(tempfile.mkdtemp()) as st:
        ...     _ = st.ingest("people", rows, subject_column="subject_id")
        ...     ads = st.train("ads", dataset="people", estimator=LinearRegression(),
        ...                    label="y", features=["x"], purpose="marketing")
        ...     r = st.object_to("s5", "marketing")
        ...     again = st.train("ads", dataset="people", estimator=LinearRegression(),
        ...                      label="y", features=["x"], purpose="marketing")
        ...     (r.rows, [s.action for s in r.models], again.n_rows, again.rows_withheld)
        (1, ['exact_unlearning'], 5, 1)
        """
        return self._withholding(
            "record an objection",
            subject_id,
            purge,
            lambda db, subject: _purposes.object_to(
                db, self._registry, subject, purpose, by, before_forget
            ),
        )

    def restrict(
        self,
        subject_id: str,
        *,
        by: str | None = None,
        purge: bool = True,
        before_forget: Callable[[Sequence[tuple[str, int]]], None] | None = None,
    ) -> _purposes.RestrictionReceipt:
        """Restrict the processing of the subject's rows (Art. 18): every version forgets
        them (a version that cannot in place is retrained, with ``purge``); the data stays;
        training leaves them out until :meth:`lift_restriction`. A repeat while restricted
        answers with the restriction in force (``repeat``). Raises
        :class:`~store.errors.UnknownSubjectError` when the store holds no row of the
        subject."""
        return self._withholding(
            "restrict processing",
            subject_id,
            purge,
            lambda db, subject: _purposes.restrict(db, self._registry, subject, by, before_forget),
        )

    def lift_restriction(
        self,
        subject_id: str,
        *,
        by: str | None = None,
        purge: bool = True,
        before_forget: Callable[[Sequence[tuple[str, int]]], None] | None = None,
    ) -> _purposes.RestrictionReceipt:
        """Lift the subject's restriction: the versions that forgot the rows for it take them
        back — kNN, linear and naive Bayes models learn them in place (exactly: equal to a fit
        on the union), the others are retrained (with ``purge``, before this returns) — except
        versions of a purpose the subject objected to. Raises
        :class:`~store.errors.NotRestrictedError` when no restriction is in force.

        Examples
        --------
        >>> import tempfile
        >>> from forget.linear import LinearRegression
        >>> rows = [{"subject_id": f"s{i}", "x": float(i), "y": 2.0 * i + 1} for i in range(6)]
        >>> with ModelStore.open(tempfile.mkdtemp()) as st:
        ...     _ = st.ingest("people", rows, subject_column="subject_id")
        ...     _ = st.train("line", dataset="people", estimator=LinearRegression(),
        ...                  label="y", features=["x"])
        ...     r = st.restrict("s5")
        ...     held = len(st.training_row_ids("line", 1))
        ...     lifted = st.lift_restriction("s5")
        ...     (held, lifted.status, [s.action for s in lifted.models],
        ...      len(st.training_row_ids("line", 1)))
        (5, 'lifted', ['learn'], 6)
        """
        return self._withholding(
            "lift a restriction",
            subject_id,
            purge,
            lambda db, subject: _purposes.lift(db, self._registry, subject, by, before_forget),
        )

    def _withholding(
        self, what: str, subject_id: str, purge: bool, step: Callable[[Database, Subject], _R]
    ) -> _R:
        """Run an objection, a restriction or a lift (``step(db, subject)``); with ``purge``,
        retrain before returning the versions it left pending."""
        receipt = step(self._writable(what), self._keys.subject(subject_id))
        if purge and _purposes.pending_steps(receipt.models):
            self.purge()
        return receipt

    # ------------------------------------------------------------------ erasure
    def erase(
        self,
        subject_id: str,
        *,
        legal_ground: str,
        purge: bool = True,
        verify: bool | float | None = None,
        evidence: str = INLINE,
        requested_by: str | None = None,
        channel: str = "python",
        before_forget: Callable[[Sequence[tuple[str, int]]], None] | None = None,
        removed: dict[str, DeletedRows] | None = None,
    ) -> ErasureReceipt:
        """Erase a subject from every dataset and every model trained on them.

        Atomic: one transaction deletes the rows, logs the forget operations and records what
        each model did; the models forget in memory just before it commits (and are rebuilt
        from the log after a crash, or after a failed commit). With ``purge`` the bytes leave
        the disk before this returns (status ``"completed"``, after retraining any version that
        could not forget in place); otherwise the status is ``"pending"`` while a version awaits
        a retrain, then ``"erased"`` until :meth:`purge` or :meth:`close`.

        ``verify`` compares each model with a retrain from scratch: ``True``/``False``, or a
        sampling rate in [0, 1] (a keyed random share of requests); None uses the store's
        ``evidence_rate``. A repeated request returns the earlier receipt (``repeat``).
        ``evidence="inline"`` runs the checks inside the erasure; ``"deferred"`` (same sample)
        records them as ``scheduled`` for :meth:`evidence_jobs` / :meth:`record_evidence`, or
        for :meth:`purge`, which runs them with ``purge=True`` before this returns.

        ``requested_by`` names who asked (the API key's name over HTTP, ``cli:<user>`` from the
        command line); ``channel`` how the request arrived (``python``, ``http``, ``cli``).
        Both are recorded with the request, in its audit entry and its report, with the
        handler: ``forget <version> (<channel>) on <host>``.

        For servers: ``before_forget`` is called with the (model, version) pairs that are
        about to forget, just before they do, inside the transaction (fence their predictions
        there); ``removed``, a dict, receives the deleted rows by dataset
        (:class:`store.data.DeletedRows`) after the commit, to take them out of derived state.
        """
        db = self._writable("erase")
        deferred = _evidence.check_mode(evidence) != INLINE
        request = self._request(subject_id, legal_ground, verify, requested_by, channel)
        deleted: list[dict[str, DeletedRows]] | None = None if removed is None else []
        (receipt,) = erasure.erase(
            db,
            self._registry,
            [request],
            deferred=deferred,
            before_forget=before_forget,
            removed=deleted,
        )
        if removed is not None and deleted:
            removed.update(deleted[0])
        if purge and receipt.status not in (erasure.COMPLETED, erasure.NO_DATA):
            self.purge()
            receipt = erasure.receipt(db, receipt.request_id, repeat=receipt.repeat)
        return receipt

    def erase_many(
        self,
        calls: Sequence[Mapping[str, Any]],
        *,
        evidence: str = INLINE,
        channel: str = "python",
        before_forget: Callable[[Sequence[tuple[str, int]]], None] | None = None,
        after_forget: Callable[[], None] | None = None,
        removed: list[dict[str, DeletedRows]] | None = None,
    ) -> list[ErasureReceipt]:
        """Several erasure requests in one transaction (a group commit), in order: each is
        what :meth:`erase` with ``purge=False`` would have made of it — its own request, audit
        entries, revisions and receipt — for the statements of one. ``calls`` are keyword
        arguments of :meth:`erase`: ``subject_id``, ``legal_ground`` and optionally
        ``verify`` and ``requested_by``. Every call is checked before anything runs (a bad
        legal ground refuses the group); if the transaction fails, none of them happened.
        ``removed``, a list, receives one dict of deleted rows per call. ``after_forget`` is
        called once the models forgot, inside the transaction: nothing after it changes them
        (a server lets their predictions go on there), unless the transaction fails (then
        they are rebuilt from the database: new objects).
        """
        db = self._writable("erase")
        deferred = _evidence.check_mode(evidence) != INLINE
        requests = self._requests(calls, channel)
        return erasure.erase(
            db,
            self._registry,
            requests,
            deferred=deferred,
            before_forget=before_forget,
            after_forget=after_forget,
            removed=removed,
        )

    def erase_now(
        self,
        calls: Sequence[Mapping[str, Any]],
        *,
        channel: str = "python",
        before_forget: Callable[[Sequence[tuple[str, int]]], None] | None = None,
        after_forget: Callable[[], None] | None = None,
        removed: list[dict[str, DeletedRows]] | None = None,
    ) -> list[ErasureReceipt]:
        """:meth:`erase_many` answered from memory: the subjects' rows read, the models
        forgetting, the group made durable in the erasure journal (one ``fsync``), and the
        receipts — the same as ``erase_many``'s, checks deferred — with no statement but the
        read; :meth:`settle` records it later (see :mod:`store.journal`). Meant for the
        thread that answers while another settles: it never uses the connection settling
        uses.

        Raises :class:`store.journal.NotNow`, before anything changed, where the recorded
        path must answer: a subject with no rows (a repeat, or nothing held), one named twice
        or erased by a group not yet recorded. The catalogue and the model states are read
        first if a purge or a change dropped them (then nothing is left to record). A group
        that leaves a version awaiting a retrain is recorded before the answer.
        """
        if self._closed or self._read_only:
            raise _journal.NotNow("the store is closed or read-only")
        requests = self._requests(calls, channel)
        keys = [r.subject.key for r in requests]
        if len(set(keys)) < len(keys) or any(self._journal.holds(k) for k in keys):
            raise _journal.NotNow("a subject named twice, or erased by an unrecorded group")
        cat = data.cached_catalog(self._db)
        if cat is None or not self._registry.states_loaded:
            if len(self._journal):  # the settler may be using the connection: not now
                raise _journal.NotNow("the catalogue or the model states are not read yet")
            self.prepare_erasures()  # none to record, none to come: the connection is free
            cat = data.catalog(self._db)
        received = now()
        found = data.read_subjects(self._db.reader(), cat, [r.subject for r in requests])
        if any(k not in found for k in keys):
            raise _journal.NotNow("a subject without rows: a repeat, or nothing held")
        planned = self._journal.planned()
        touched: list[tuple[str, int]] = []
        try:
            group = erasure.carry_out(
                self._registry,
                [(r, found[r.subject.key]) for r in requests],
                received=received,
                erased_at=now(),
                deferred=True,
                before_forget=before_forget,
                after_forget=after_forget,
                planned=planned,
                touched=touched,
            )
            self._journal.append(group, deferred=True, planned=planned)
        except BaseException:
            if touched:  # they forgot what is not journaled: record the rest, rebuild them
                self.settle()
                self._registry.reload(touched)
            raise
        if any(r.status == erasure.PENDING_REQUEST for r in group.receipts.values()):
            self.settle()  # a version left serving: the registry's readers see it at once
        if removed is not None:
            removed += group.removed()
        return [group.receipts[r.request_id] for r in requests]

    # ------------------------------------------------------------------ retention
    def set_retention_policy(
        self, dataset: str, time_column: str, period: str, *, set_by: str | None = None
    ) -> _retention.Policy:
        """Let ``dataset``'s rows expire ``period`` (an ISO 8601 duration: ``P30D``, ``P6M``,
        ``P1Y``) after the time in ``time_column`` (see :mod:`store.retention`); replaces an
        earlier policy, audited. Nothing expires until :meth:`expire` runs (a server's purger
        runs it on its schedule)."""
        return _retention.set_policy(
            self._writable("set a retention policy"), dataset, time_column, period, set_by, now()
        )

    def remove_retention_policy(self, dataset: str, *, removed_by: str | None = None) -> None:
        """Remove ``dataset``'s retention policy (audited): its rows no longer expire."""
        _retention.remove_policy(self._writable("remove a retention policy"), dataset, removed_by)

    def retention_policies(self) -> list[_retention.Policy]:
        return _retention.policies(self._live())

    def expiries(self, since: object = None, until: object = None) -> list[dict[str, Any]]:
        """The retention requests received in ``[since, until)`` (the periodic report of what
        expired): dataset, cutoff, rows, status and each model version's action."""
        return _retention.expiries(self._live(), *reports.period(since, until))

    def expire(
        self,
        *,
        at: object = None,
        purge: bool = False,
        evidence: str = INLINE,
        before_forget: Callable[[Sequence[tuple[str, int]]], None] | None = None,
        after_forget: Callable[[], None] | None = None,
        removed: list[dict[str, DeletedRows]] | None = None,
    ) -> list[ErasureReceipt]:
        """Erase every row past its dataset's retention period at ``at`` (an ISO 8601 moment;
        now by default): one erasure request per dataset with expired rows, in one
        transaction, legal ground ``art5-1-e`` and no subject (``subject_key`` is
        ``retention:<dataset>``; the cutoff is in its audit entry). Every model trained on the
        rows forgets them, exactly as for an erasure; with ``purge`` the bytes leave the disk
        before this returns. ``before_forget``, ``after_forget`` and ``removed``: as
        :meth:`erase_many`'s.
        Receipts of the requests made (none when nothing expired)."""
        db = self._writable("expire rows")
        at = reports.instant(at, "at") or now()
        due = _retention.due(db, at)
        if not due:
            return []
        requests = []
        for e, _ in due:
            rate = self.evidence_rate
            request_id = erasure.new_request_id()
            requests.append(
                erasure.Request(
                    Subject(_retention.SUBJECT_PREFIX + e.dataset, ""),
                    _retention.GROUND,
                    request_id,
                    _evidence.Policy.of(rate, self._keys.draw("evidence\x00" + request_id)),
                    "retention",
                    erasure.handler("retention"),
                    e,
                )
            )
        receipts = erasure.erase(
            db,
            self._registry,
            requests,
            deferred=_evidence.check_mode(evidence) != INLINE,
            before_forget=before_forget,
            after_forget=after_forget,
            removed=removed,
        )
        if purge:
            self.purge()
            return [erasure.receipt(db, r.request_id) for r in receipts]
        return receipts

    def _requests(self, calls: Sequence[Mapping[str, Any]], channel: str) -> list[erasure.Request]:
        """The requests of ``erase_many``-style calls, each checked."""
        return [
            self._request(
                c["subject_id"], c["legal_ground"], c.get("verify"), c.get("requested_by"), channel
            )
            for c in calls
        ]

    def _request(
        self,
        subject_id: str,
        legal_ground: str,
        verify: bool | float | None,
        requested_by: str | None,
        channel: str,
    ) -> erasure.Request:
        ground = erasure.check_legal_ground(legal_ground)
        subject = self._keys.subject(subject_id)
        rate = self.evidence_rate if verify is None else _evidence.check_rate(verify)
        request_id = erasure.new_request_id()
        draw = self._keys.draw("evidence\x00" + request_id) if 0 < rate < 1 else 0.0
        policy = _evidence.Policy.of(rate, draw)
        return erasure.Request(
            subject, ground, request_id, policy, requested_by, erasure.handler(channel)
        )

    def retrain_pending(self, *, raise_errors: bool = True) -> tuple[RetrainResult, ...]:
        """Refit every version that could not forget in place on its remaining rows.

        Each becomes ready (served again) at its last revision, or retired when no rows remain
        or its estimator refuses them; its old artifact is deleted, and the requests waiting for
        it leave ``pending``. See :mod:`store.retrain`. :meth:`purge` calls this first.
        """
        return retrain.retrain_pending(
            self._writable("retrain"), self._registry, raise_errors=raise_errors
        )

    def shards_pending(self) -> list[tuple[str, int]]:
        """The (model, version) pairs of sharded models (:class:`forget.Sharded`) that serve
        without shards an erasure dropped, until :meth:`purge` retrains them."""
        self._live()
        return self._registry.shards_pending()

    def shard_jobs(self) -> list[ShardJob]:
        """Copies of the sharded models serving without dropped shards: a server retrains
        them (``job.run()``) without its lock, then :meth:`publish_shards` under it."""
        self._writable("retrain shards")
        return self._registry.shard_jobs()

    def publish_shards(self, jobs: Sequence[ShardJob]) -> tuple[ShardRetrain, ...]:
        """Publish retrained copies as new revisions; one whose version moved meanwhile is
        dropped (the next :meth:`purge` retrains it)."""
        self._writable("retrain shards")
        return self._registry.publish_shards(jobs)

    def purge(
        self,
        *,
        force: bool = False,
        retrain: bool = True,
        evidence: bool = True,
        guard: Callable[[str, int], AbstractContextManager[Any]] | None = None,
    ) -> PurgeResult:
        """Finish what erasures left: retrain pending versions, and the shards sharded models
        dropped (each as a new revision: :meth:`~store.registry.Registry.retrain_shards`;
        unless ``retrain=False``, then before the artifacts are rewritten all the same),
        run scheduled retrain checks (unless ``evidence=False``: see :meth:`collect_evidence`),
        rewrite artifacts, compact the database.

        Compacts when a request awaits purging (or with ``force``), then marks those requests
        completed (a request still waiting for a retrain stays ``pending``). A version whose
        retrain fails stays pending and is reported in :attr:`PurgeResult.retrained`.

        ``guard(model, version)``, for servers, is entered while each in-memory model takes
        its compacted form (``compact``'s ``swap``: what its predictions read is replaced);
        nothing else a purge does changes a model that serves.
        """
        plan = self.purge_plan(force=force, retrain=retrain, evidence=evidence)
        try:
            plan.run()
        finally:
            result = self.purge_finish(plan, guard=guard)
        return result

    def purge_plan(
        self, *, force: bool = False, retrain: bool = True, evidence: bool = True
    ) -> erasure.PurgePlan:
        """Phase 1 of :meth:`purge`, for a caller holding a lock around the store (a server):
        the retrains, the checks, and copies of the models whose artifacts are rewritten.
        The plan's ``run()`` (phase 2) builds and writes those artifacts without the lock,
        while the models serve and forget on (:meth:`purge_since` and the plan's
        ``catch_up()`` replay those forgets onto the copies without it, as far as they
        go); :meth:`purge_finish` (phase 3, under the lock
        again, always called once per plan) has the models take their compacted forms,
        records the checkpoints, compacts, and completes the requests that waited at the
        plan. One plan at a time."""
        db = self._writable("purge")
        done = (
            self.retrain_pending(raise_errors=False) if retrain and self._registry.pending() else ()
        )
        shards = self._registry.retrain_shards() if retrain else ()
        if evidence:
            self.collect_evidence()
        plan = erasure.purge_plan(db, self._registry, force=force)
        plan.retrained, plan.shards_retrained = done, shards
        return plan

    def purge_since(self, plan: erasure.PurgePlan) -> int:
        """Between the plan's ``run()`` and :meth:`purge_finish` (under the caller's lock):
        hand over to ``plan.catch_up`` (without the lock) the rows the copied models' versions
        forgot since, so that the finish replays only what came after; how many batches."""
        since = self._registry.checkpoint_since(plan.jobs)
        plan.since = since
        return sum(len(rows) for rows in since)

    def purge_finish(
        self,
        plan: erasure.PurgePlan,
        *,
        guard: Callable[[str, int], AbstractContextManager[Any]] | None = None,
    ) -> PurgeResult:
        """Phase 3 of :meth:`purge` (see :meth:`purge_plan`)."""
        return erasure.purge_finish(self._writable("purge"), self._registry, plan, guard=guard)

    # ------------------------------------------------------------------ deferred evidence
    def evidence_scheduled(self) -> int:
        """How many deferred retrain checks are scheduled and not yet recorded."""
        return _evidence.outstanding(self._live())

    def evidence_jobs(self, *, limit: int | None = None) -> list[EvidenceJob]:
        """Phase 1 of deferred evidence (reads and copies; under the caller's lock): a
        self-contained job per model version with scheduled checks (at most ``limit``, oldest
        first).

        Each holds a copy of the model at its current revision and the version's remaining
        rows; :meth:`~store.evidence.EvidenceJob.run` needs no store (phase 2, off the lock).
        A version that awaits a retrain gets none until it is retrained.

        Examples
        --------
        >>> import tempfile
        >>> from forget.linear import LinearRegression
        >>> rows = [{"subject_id": f"s{i}", "x": float(i), "y": 2.0 * i + 1} for i in range(6)]
        >>> with ModelStore.open(tempfile.mkdtemp()) as st:
        ...     _ = st.ingest("people", rows, subject_column="subject_id")
        ...     _ = st.train("line", dataset="people", estimator=LinearRegression(),
        ...                  label="y", features=["x"])
        ...     r = st.erase("s5", legal_ground="art17-1-b", purge=False, evidence="deferred")
        ...     jobs = st.evidence_jobs()  # under the lock
        ...     results = [job.run() for job in jobs]  # outside it
        ...     n = sum(st.record_evidence(j, res) for j, res in zip(jobs, results))  # under it
        ...     ev = st.erasure_request(r.request_id).models[0].evidence
        ...     (r.models[0].evidence["status"], n, ev["status"], ev["passed"])
        ('scheduled', 1, 'recorded', True)
        """
        return _evidence.jobs(self._writable("run retrain checks"), self._registry, limit)

    def record_evidence(self, job: EvidenceJob, result: Mapping[str, Any]) -> int:
        """Phase 3 (under the caller's lock): record ``result`` of ``job.run()`` for the job's
        checks still scheduled, with an audit entry each; how many were recorded.

        The evidence names the revision checked; when the version moved on since the job was
        made, it says so (the check holds for the revision the job copied).
        """
        return _evidence.record(
            self._writable("record retrain checks"), self._registry, job, result
        )

    def collect_evidence(self) -> int:
        """Run every scheduled check now, all three phases in turn; how many were recorded."""
        recorded = 0
        for job in self.evidence_jobs():
            recorded += self.record_evidence(job, job.run())
        return recorded

    def erasure_request(self, request_id: str) -> ErasureReceipt:
        """The current receipt of a request (its status moves on as it is purged)."""
        return erasure.receipt(self._live(), request_id)

    def erasure_report(self, request_id: str) -> dict[str, Any]:
        """The JSON-able report of a request (see :mod:`store.reports`)."""
        return reports.erasure_report(self._live(), request_id)

    def summary_report(
        self, since: Any = None, until: Any = None, *, as_of: Any = None
    ) -> dict[str, Any]:
        """Counts and times of the requests received in ``[since, until)``, JSON-able.

        Bounds are ISO 8601 strings or datetimes (naive ones read as UTC), None for open.
        Gives counts by status and legal ground, median / p95 completion seconds (received to
        completed), the overdue requests (past the Art. 12(3) deadline at ``as_of``, default
        now, and not completed) and the pending ones; no subject key or id.
        """
        return reports.summary_report(self._live(), since, until, as_of)

    # ------------------------------------------------------------------ audit
    def verify_audit_log(self, expected_head: AuditHead | None = None) -> AuditVerification:
        """Recompute the audit hash chain; pass a head exported earlier to catch truncation."""
        return audit.verify(self._live(), expected_head)

    def audit_head(self) -> AuditHead:
        """The newest audit entry's seq and hash, to keep outside the store."""
        return audit.head(self._live())


def _matrix(rows: Any, features: Sequence[str]) -> np.ndarray:
    if isinstance(rows, Mapping):
        rows = [rows]
    if isinstance(rows, Sequence) and rows and all(isinstance(r, Mapping) for r in rows):
        missing = sorted({f for r in rows for f in features if f not in r})
        if missing:
            raise PredictInputError(f"rows lack features {missing} (model uses {list(features)})")
        try:
            return np.array([[float(r[f]) for f in features] for r in rows], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise PredictInputError(f"feature values must be numbers: {exc}") from exc
    try:
        X = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PredictInputError(f"rows must be dicts or a 2-d array of numbers: {exc}") from exc
    if X.ndim != 2 or X.shape[1] != len(features):
        raise PredictInputError(
            f"rows must have shape (n, {len(features)}) for features {list(features)}, "
            f"got {X.shape}"
        )
    return X
