"""The ``forget`` command line: a demo, the server, and the store's everyday operations.

Every command that touches a store takes ``--store DIR``. Errors a user can fix (an unknown
dataset, a locked store, missing API keys) print one line and exit with status 2; ``forget
erase`` exits with 3 when the store held no data under the subject id (nothing was erased),
``forget access`` when it holds none and no erasure request names it, and ``forget object``
and ``forget restrict`` when it holds no row of the subject.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

NO_DATA_EXIT = 3


def _store(args: argparse.Namespace, *, create: bool = False) -> Any:
    """The store at ``--store``: an existing one (a mistyped path is an error), except for
    ``ingest``, which creates it."""
    from store import ModelStore

    return ModelStore.open(args.store, create=create)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True, default=str))


def _param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


# ---------------------------------------------------------------------- commands
def _demo(args: argparse.Namespace) -> int:
    from api.demo import run

    return run(args)


def _serve(args: argparse.Namespace) -> int:
    from api.server import load_keys, serve

    keys = load_keys(args.host, no_auth=args.no_auth)
    if not args.create:
        from store import ModelStore

        ModelStore.find(args.store)
    if args.ray:
        import cluster

        cluster.serve(
            args.store,
            host=args.host,
            port=args.port,
            keys=keys,
            replicas=args.replicas,
            purge_interval=args.purge_interval,
            evidence_rate=args.evidence_rate,
            monitoring=not args.no_monitoring,
            retrain_on_drift=args.retrain_on_drift,
            estimate_accuracy=args.estimate_accuracy,
            log_level=args.log_level,
        )
        return 0
    serve(
        args.store,
        host=args.host,
        port=args.port,
        keys=keys,
        purge_interval=args.purge_interval,
        evidence_rate=args.evidence_rate,
        batching=not args.no_batching,
        cache_bytes=int(args.cache_mb * 1024 * 1024),
        monitoring=not args.no_monitoring,
        retrain_on_drift=args.retrain_on_drift,
        estimate_accuracy=args.estimate_accuracy,
        log_level=args.log_level,
        switch_interval_ms=args.switch_interval,
    )
    return 0


def _positive_ms(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(f"must be a number of milliseconds in (0, 1000]: {text}")
    return value


def _ingest(args: argparse.Namespace) -> int:
    with _store(args, create=True) as st:
        info = st.ingest(args.name, args.path, subject_column=args.subject_column)
        print(
            f"dataset {info.name!r}: {info.n_rows} rows, columns {[c.name for c in info.columns]}"
        )
    return 0


def _train(args: argparse.Namespace) -> int:
    from api.service import build_estimator

    # Sharded: --param 'estimator={"kind": "sklearn.tree.DecisionTreeClassifier", "params": {}}'
    estimator = build_estimator(args.estimator, dict(args.param))
    features = [f.strip() for f in args.features.split(",") if f.strip()]
    fitting: AbstractContextManager[Any] = nullcontext()
    if args.ray or args.ray_address:
        from cluster.training import on_ray

        fitting = on_ray(args.ray_address)
    with fitting, _store(args) as st:
        mv = st.train(
            args.name,
            dataset=args.dataset,
            estimator=estimator,
            label=args.label,
            features=features,
            purpose=args.purpose,
        )
        print(f"model {mv.name!r} version {mv.version}: {mv.n_rows} rows, artifact {mv.fit_sha256}")
        if mv.rows_withheld:
            print(
                f"{_plural(mv.rows_withheld, 'row')} left out: restricted subjects', or objecting "
                f"to purpose {mv.purpose!r}"
            )
    return 0


def _erase(args: argparse.Namespace) -> int:
    if args.from_file is not None:
        return _erase_file(args)
    with _store(args) as st:
        r = st.erase(
            args.subject_id,
            legal_ground=args.legal_ground,
            purge=not args.no_purge,
            requested_by=args.requested_by or f"cli:{getpass.getuser()}",
            channel="cli",
        )
        print(
            f"request {r.request_id}: {r.status}, {r.rows_erased} rows"
            + (" (repeat of an earlier request)" if r.repeat else "")
        )
        print(f"  requested by {r.requested_by}; handled by {r.handled_by}")
        for a in r.models:
            print(f"  {a.model} v{a.version} -> revision {a.revision}: {a.action}")
    if r.status == "no_data":
        print(
            "forget erase: this store holds no data under this subject id: nothing was erased "
            "(the request is recorded; check the id)",
            file=sys.stderr,
        )
        return NO_DATA_EXIT
    return 0


BATCH_GROUP = 4096  # requests per transaction of ``forget erase --from-file`` (as the API's)


def _erase_file(args: argparse.Namespace) -> int:
    """``forget erase --from-file``: every id read and checked first (a malformed file erases
    nothing), then the requests in groups of ``BATCH_GROUP`` per transaction, one line each."""
    text = sys.stdin.read() if args.from_file == "-" else Path(args.from_file).read_text()
    ids = [s for line in text.splitlines() if (s := line.split("#", 1)[0].strip())]
    if not ids:
        print(f"forget erase: {args.from_file} names no subject id", file=sys.stderr)
        return 2
    who = args.requested_by or f"cli:{getpass.getuser()}"
    counts: dict[str, int] = {}
    with _store(args) as st:
        calls = [{"subject_id": s, "legal_ground": args.legal_ground, "requested_by": who}
                 for s in ids]  # fmt: skip
        for start in range(0, len(calls), BATCH_GROUP):
            for n, r in enumerate(st.erase_many(calls[start : start + BATCH_GROUP], channel="cli")):
                status = "repeat" if r.repeat else r.status
                counts[status] = counts.get(status, 0) + 1
                print(f"{start + n + 1}: request {r.request_id}: {status}, {r.rows_erased} rows")
        if not args.no_purge:
            st.purge()
    print(f"{len(ids)} requests: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return 0


class _ServerError(Exception):
    """The server named by ``--server`` refused or could not be reached."""


def _get(args: argparse.Namespace, path: str, **headers: str) -> Any:
    """GET ``path`` from ``--server`` with the token in ``FORGET_TOKEN``: the read-only
    commands' way in while ``forget serve`` holds the store (DuckDB lets one process open it)."""
    import os

    import httpx

    token = os.environ.get("FORGET_TOKEN")
    if not token:
        raise _ServerError("set FORGET_TOKEN to an API token (scope audit) to use --server")
    try:
        r = httpx.get(
            args.server.rstrip("/") + path,
            headers={"Authorization": f"Bearer {token}", **headers},
            timeout=30.0,
        )
    except httpx.HTTPError as exc:
        raise _ServerError(f"{args.server}: {exc}") from exc
    if r.status_code != 200:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text[:200]
        raise _ServerError(f"{args.server} answered {r.status_code}: {message}")
    return r.text if headers else r.json()


def _read_only(args: argparse.Namespace) -> Any:
    from store import ModelStore

    return ModelStore.open(args.store, read_only=True)


def _report(args: argparse.Namespace) -> int:
    from api import html

    if args.server:
        path = f"/v1/erasure-requests/{args.request_id}/report"
        text = _get(args, path, Accept="text/html") if args.html else None
        doc = None if args.html else _get(args, path)
    else:
        with _read_only(args) as st:
            doc = st.erasure_report(args.request_id)
        text = html.erasure_report(doc) if args.html else None
    if text is None:
        text = json.dumps(doc, indent=2, default=str)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def _head(text: str) -> Any:
    """``--expect-head SEQ:HASH``, as ``forget verify`` prints it."""
    from store.audit import AuditHead

    seq, sep, digest = text.partition(":")
    if not (sep and seq.isdigit() and len(digest) == 64 and set(digest) <= set("0123456789abcdef")):
        raise argparse.ArgumentTypeError(
            f"expected SEQ:HASH (a number, a colon, 64 hex digits) as printed by forget verify, "
            f"got {text!r}"
        )
    return AuditHead(int(seq), digest)


def _verify(args: argparse.Namespace) -> int:
    if args.server:
        if args.expect_head:
            raise _ServerError("--expect-head needs --store (the API checks the chain only)")
        doc = _get(args, "/v1/audit/verify")
        print(f"audit log {'verified' if doc['ok'] else 'BROKEN'}: {doc['entries']} entries, "
              f"head {doc['head']}")  # fmt: skip
        for problem in doc["problems"]:
            print(f"  {problem}")
        return 0 if doc["ok"] else 1
    # read-only: verifying changes nothing (no recovery, purge, migration or cleanup)
    with _read_only(args) as st:
        v = st.verify_audit_log(args.expect_head)
    print(
        f"audit log {'verified' if v.ok else 'BROKEN'}: {v.entries} entries, "
        f"head {v.head.seq}:{v.head.entry_hash}"
    )
    if not v.ok:
        if v.first_bad_seq is not None:
            print(f"  first bad entry {v.first_bad_seq}")
        for problem in v.problems or (str(v.reason),):
            print(f"  {problem}")
    return 0 if v.ok else 1


def _models(args: argparse.Namespace) -> int:
    if args.server:
        for m in _get(args, "/v1/models")["models"]:
            for v in m["versions"]:
                print(
                    f"{m['name']} v{v['version']} r{v['revision']} {v['status']}: "
                    f"{v['estimator']} on {v['dataset']} "
                    f"({_plural(len(v['lineage']), 'revision')})"
                )
        return 0
    with _read_only(args) as st:
        for mv in st.list_models():
            print(
                f"{mv.name} v{mv.version} r{mv.revision} {mv.status}: {mv.estimator} on "
                f"{mv.dataset} ({mv.n_rows} rows, {_plural(len(mv.lineage), 'revision')})"
            )
    return 0


def _export(args: argparse.Namespace) -> int:
    with _store(args) as st:
        blob, rec = st.export(
            args.model, args.version, recipient=args.recipient, format=args.format, by=_who(args)
        )
    Path(args.output).write_bytes(blob)
    print(
        f"{args.output}: {rec.model} v{rec.version} revision {rec.revision} for "
        f"{rec.recipient!r} ({rec.size} bytes, sha256 {rec.sha256[:16]}…); recorded as "
        f"{rec.export_id}: an erasure that changes this revision will name the recipient"
    )
    return 0


def _exports(args: argparse.Namespace) -> int:
    if args.server:
        query = "?stale=true" if args.stale else ""
        copies = _get(args, "/v1/audit/exports" + query)["exports"]
    else:
        with _read_only(args) as st:
            copies = [c for c in st.exports() if c["stale"] or not args.stale]
    _print_json({"exports": copies})
    return 0


def _access(args: argparse.Namespace) -> int:
    """``forget access``: what the store holds on one subject (Art. 15), as JSON or HTML.

    The id is read from ``--subject-id-file`` (``-``: stdin, the default), never from the
    command line, where ``ps`` shows it to every user of the machine; one line, its end
    stripped. With ``--server`` it travels in a JSON body (POST), never in the URL.
    """
    from api import html

    subject_id = _subject_id(args)
    if subject_id is None:
        return 2
    if args.server:
        import os

        import httpx

        token = os.environ.get("FORGET_TOKEN")
        if not token:
            raise _ServerError("set FORGET_TOKEN to an API token (scope audit) to use --server")
        try:
            r = httpx.post(
                args.server.rstrip("/") + "/v1/subjects/access",
                json={"subject_id": subject_id},
                headers={"Authorization": f"Bearer {token}"},
                params={"format": "html" if args.html else "json"},
                timeout=30.0,
            )
        except httpx.HTTPError as exc:
            raise _ServerError(f"{args.server}: {exc}") from exc
        if r.status_code != 200:
            try:
                error = r.json()["error"]
            except (ValueError, KeyError, TypeError):
                error = {"type": "", "message": r.text[:200]}
            if r.status_code == 404 and error.get("type") == "unknown_subject":
                print(f"forget access: {error['message']}", file=sys.stderr)
                return NO_DATA_EXIT
            raise _ServerError(f"{args.server} answered {r.status_code}: {error.get('message')}")
        out = r.text if args.html else json.dumps(r.json(), indent=2, sort_keys=True)
    else:
        from store.errors import UnknownSubjectError

        try:
            with _store(args) as st:
                doc = st.access(subject_id)
        except UnknownSubjectError as exc:
            print(f"forget access: {exc}", file=sys.stderr)
            return NO_DATA_EXIT
        out = html.access_report(doc) if args.html else json.dumps(doc, indent=2, sort_keys=True)
    if args.output:
        Path(args.output).write_text(out + "\n", encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(out)
    return 0


def _subject_id(args: argparse.Namespace) -> str | None:
    """The one subject id in ``--subject-id-file`` (``-``: stdin), or None (said on stderr)."""
    source = args.subject_id_file
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    lines = text.splitlines()
    subject_id = lines[0].rstrip("\r\n") if lines else ""
    if not subject_id.strip() or len([s for s in lines if s.strip()]) > 1:
        where = "stdin" if source == "-" else source
        print(
            f"forget {args.command}: {where} must hold one subject id, on one line", file=sys.stderr
        )
        return None
    return subject_id


def _post_right(args: argparse.Namespace, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST a subject right to ``--server`` (token in FORGET_TOKEN, scope erase); the id
    travels in the JSON body. An unknown subject raises the store's error, as locally."""
    import os

    import httpx

    from store.errors import UnknownSubjectError

    token = os.environ.get("FORGET_TOKEN")
    if not token:
        raise _ServerError("set FORGET_TOKEN to an API token (scope erase) to use --server")
    try:
        r = httpx.post(
            args.server.rstrip("/") + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60.0,
        )
    except httpx.HTTPError as exc:
        raise _ServerError(f"{args.server}: {exc}") from exc
    if r.status_code not in (200, 201):
        try:
            error = r.json()["error"]
        except (ValueError, KeyError, TypeError):
            error = {"type": "", "message": r.text[:200]}
        if error.get("type") == "unknown_subject":
            raise UnknownSubjectError()
        raise _ServerError(f"{args.server} answered {r.status_code}: {error.get('message')}")
    doc: dict[str, Any] = r.json()
    return doc


def _right(args: argparse.Namespace) -> int:
    """``forget object PURPOSE`` (Art. 21) and ``forget restrict [--lift]`` (Art. 18): the
    subject's id on stdin, carried out in the store or by ``--server``."""
    from store import purposes
    from store.errors import UnknownSubjectError

    subject_id = _subject_id(args)
    if subject_id is None:
        return 2
    objecting = args.command == "object"
    if objecting:
        path, body = "/v1/subjects/objections", {"subject_id": subject_id, "purpose": args.purpose}
    else:
        path, body = (
            "/v1/subjects/restrictions" + (":lift" if args.lift else ""),
            {"subject_id": subject_id},
        )
    try:
        if args.server:
            doc = _post_right(args, path, body)
        else:
            with _store(args) as st:
                if objecting:
                    receipt: Any = st.object_to(subject_id, args.purpose, by=_who(args))
                else:
                    act = st.lift_restriction if args.lift else st.restrict
                    receipt = act(subject_id, by=_who(args))
                doc = purposes.as_json(receipt)
    except UnknownSubjectError as exc:
        print(f"forget {args.command}: {exc}", file=sys.stderr)
        return NO_DATA_EXIT
    _print_json(doc)
    return 0


def _target(text: str) -> int | dict[int, float]:
    """``forget alias set``'s TARGET: a version (``3``) or a split (``1=0.9,2=0.1``)."""
    text = text.strip()
    if text.isdecimal():
        return int(text)
    split: dict[int, float] = {}
    for part in text.split(","):
        version, sep, weight = part.strip().partition("=")
        try:
            if not sep or not version.strip().isdecimal():
                raise ValueError(part)
            split[int(version)] = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a version (3) or a split VERSION=WEIGHT,... (1=0.9,2=0.1), got {text!r}"
            ) from None
    return split


def _who(args: argparse.Namespace) -> str:
    return args.by or f"cli:{getpass.getuser()}"


def _alias(args: argparse.Namespace) -> int:
    if args.action == "ls":
        from store.errors import ModelNotServableError

        with _read_only(args) as st:
            aliases = st.aliases(args.model)
            doc: dict[str, Any] = {
                "model": args.model,
                "aliases": {a: t.as_dict() for a, t in aliases.items()},
            }
            if "default" not in aliases:
                try:
                    v = st.resolve(args.model).version
                    doc["default"] = f"unset: the newest ready version, v{v}, answers"
                except ModelNotServableError as exc:
                    doc["default"] = f"unset: {exc}"
        _print_json(doc)
        return 0
    with _store(args) as st:
        if args.action == "set":
            t = st.set_alias(args.model, args.alias, args.target, shadow=args.shadow, by=_who(args))
            _print_json({"model": args.model, "alias": args.alias, **t.as_dict()})
        else:
            st.delete_alias(args.model, args.alias, by=_who(args))
            print(f"model {args.model!r}: alias {args.alias!r} removed")
    return 0


def _purpose(args: argparse.Namespace) -> int:
    """``forget purpose``: declare a processing purpose (Art. 21), or list them."""
    if args.action == "ls":
        with _read_only(args) as st:
            counts = st.objection_counts()
            versions = st.list_models()
            _print_json(
                [
                    {
                        "purpose": p,
                        "models": [
                            f"{mv.name} v{mv.version}" for mv in versions if mv.purpose == p
                        ],
                        "objections": counts.get(p, 0),
                    }
                    for p in st.purposes()
                ]
            )
        return 0
    with _store(args) as st:
        created = st.declare_purpose(args.purpose, by=_who(args))
    print(f"purpose {args.purpose!r} " + ("declared" if created else "was known already"))
    return 0


def _retention(args: argparse.Namespace) -> int:
    """``forget retention``: datasets' retention policies (Art. 5(1)(e)) and expiry."""
    if args.action == "show":
        with _read_only(args) as st:
            _print_json(
                {
                    "policies": [p.as_dict() for p in st.retention_policies()],
                    "expiries": st.expiries(args.since, args.until),
                }
            )
        return 0
    with _store(args) as st:
        if args.action == "set":
            policy = st.set_retention_policy(
                args.dataset, args.time_column, args.period, set_by=_who(args)
            )
            _print_json(policy.as_dict())
        elif args.action == "rm":
            st.remove_retention_policy(args.dataset, removed_by=_who(args))
            print(f"dataset {args.dataset!r}: retention policy removed; its rows no longer expire")
        else:
            receipts = st.expire(purge=not args.no_purge)
            for r in receipts:
                print(
                    f"request {r.request_id}: {r.rows_erased} rows of "
                    f"{', '.join(r.datasets)} expired, {r.status}"
                )
            if not receipts:
                print("nothing has expired")
    return 0


def _versions(args: argparse.Namespace) -> int:
    with _store(args) as st:
        if args.action == "rm":
            mv = st.delete_version(args.model, args.version, by=_who(args))
            print(
                f"model {mv.name!r} v{mv.version} deleted: its artifacts, training-rows link "
                "and database rows are gone from disk"
            )
            return 0
        if args.off or args.keep_last is not None:
            deleted = st.set_retention(None if args.off else args.keep_last, by=_who(args))
        else:
            deleted = []
        _print_json(
            {
                "keep_last": st.retention,
                "deleted": [{"model": mv.name, "version": mv.version} for mv in deleted],
            }
        )
    return 0


# ---------------------------------------------------------------------- parser
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forget",
        description="Models that forget: a model store for GDPR Art. 17 erasure requests.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str,
        func: Callable[[argparse.Namespace], int],
        help: str,
        store: bool = True,
        server: bool = False,
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        if server:  # read-only: from the store's files, or through a server that holds them
            where = p.add_mutually_exclusive_group(required=True)
            where.add_argument("--store", metavar="DIR", help="the store directory (read-only)")
            where.add_argument(
                "--server",
                metavar="URL",
                help="ask a running forget serve instead (token in FORGET_TOKEN, scope audit)",
            )
        elif store:
            p.add_argument("--store", required=True, metavar="DIR", help="the store directory")
        p.set_defaults(func=func)
        return p

    p = command(
        "demo",
        _demo,
        "build a store from the bundled data, serve it, send real traffic, print what happened",
        store=False,
    )
    p.add_argument("--store", metavar="DIR", help="where to build the store (default: a temp dir)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--trees", type=int, default=100, help="trees in the forest (default 100)")
    p.add_argument(
        "--requests", type=int, default=100, help="erasure requests to send (default 100)"
    )
    p.add_argument("--predictions", type=int, default=500, help="predict calls (default 500)")
    p.add_argument("--once", action="store_true", help="exit after the demo instead of serving")

    p = command("serve", _serve, "serve a store over HTTP (keys from FORGET_API_KEYS)")
    p.add_argument(
        "--create",
        action="store_true",
        help="create the store if the directory holds none (else a missing store is an error)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="local demo only: serve without tokens (refused unless bound to loopback)",
    )
    p.add_argument(
        "--purge-interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how often erased data is purged from disk in the background (default 30)",
    )
    p.add_argument(
        "--evidence-rate",
        type=float,
        default=0.1,
        metavar="SHARE",
        help="share of erasures whose models are checked against a retrain (default 0.1)",
    )
    p.add_argument("--no-batching", action="store_true", help="score each predict call on its own")
    p.add_argument(
        "--cache-mb",
        type=float,
        default=64.0,
        metavar="MB",
        help="prediction cache size (default 64; 0 turns it off)",
    )
    p.add_argument(
        "--no-monitoring", action="store_true", help="no drift monitoring of served traffic"
    )
    p.add_argument(
        "--retrain-on-drift",
        action="store_true",
        help="refit a drifting model on its dataset's current rows (at most hourly)",
    )
    p.add_argument(
        "--estimate-accuracy",
        action="store_true",
        help="estimate served classifiers' accuracy on unlabeled traffic (performance "
        "prediction; a background fit per classifier version) in the drift report",
    )
    p.add_argument(
        "--ray",
        action="store_true",
        help="serve from replicas on Ray (pip install 'forget[ray]'); RAY_ADDRESS or a local Ray",
    )
    p.add_argument("--replicas", type=int, default=2, help="with --ray: replicas (default 2)")
    p.add_argument(
        "--switch-interval",
        type=_positive_ms,
        default=5.0,
        metavar="MS",
        help="the interpreter's thread switch interval, without --ray (default 5, CPython's "
        "own): shorter, erasures wait less for the GIL beside busy predictions, whose tail "
        "latency grows",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    p = command("ingest", _ingest, "create a dataset from a CSV or Parquet file")
    p.add_argument("name", help="dataset name")
    p.add_argument("path", help="a .csv or .parquet file")
    p.add_argument("--subject-column", required=True, help="the column naming each row's subject")

    p = command("train", _train, "fit an estimator on a dataset as a new model version")
    p.add_argument("name", help="model name")
    p.add_argument("--dataset", required=True)
    p.add_argument(
        "--estimator",
        required=True,
        help="e.g. HedgeCutClassifier, KNNClassifier; Sharded wraps a scikit-learn learner: "
        '--param \'estimator={"kind": "sklearn.tree.DecisionTreeClassifier", "params": {}}\'',
    )
    p.add_argument("--label", required=True, help="the label column")
    p.add_argument("--features", required=True, help="comma-separated feature columns")
    p.add_argument(
        "--param",
        type=_param,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an estimator parameter (JSON value), repeatable",
    )
    p.add_argument(
        "--purpose",
        metavar="NAME",
        help="what the version is processed for (objections name it, Art. 21); rows of "
        "subjects who objected to it, and of restricted subjects, are left out",
    )
    p.add_argument(
        "--ray",
        action="store_true",
        help="fit a HedgeCut forest's trees as Ray tasks (the same model; needs the ray extra)",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="the Ray cluster to use (implies --ray; default: this machine's, or a new one)",
    )

    p = command("erase", _erase, "erase a subject from every dataset and model (Art. 17)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("subject_id", nargs="?")
    which.add_argument(
        "--from-file",
        metavar="FILE",
        help="one subject id per line (blank lines and # comments skipped; - for stdin): each "
        "its own request, carried out in groups that share a transaction",
    )
    p.add_argument("--legal-ground", default="art17-1-b", help="art17-1-a ... art17-1-f")
    p.add_argument("--no-purge", action="store_true", help="leave the physical purge for later")
    p.add_argument(
        "--requested-by",
        metavar="WHO",
        help="who asked (recorded with the request and in its report; default: cli:<os user>)",
    )

    p = command("report", _report, "print an erasure request's report (JSON or HTML)", server=True)
    p.add_argument("request_id")
    p.add_argument("--html", action="store_true", help="an HTML page instead of JSON")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")

    p = command(
        "verify",
        _verify,
        "verify the audit log's keyed chain, read-only (exit 1 if broken)",
        server=True,
    )
    p.add_argument("--expect-head", type=_head, metavar="SEQ:HASH", help="a head exported earlier")

    command("models", _models, "list model versions", server=True)

    p = command("export", _export, "export a model version as ONNX for a recipient (recorded)")
    p.add_argument("model")
    p.add_argument("--version", type=int, help="default: the version the bare name serves")
    p.add_argument("--format", default="onnx", choices=["onnx"])
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p.add_argument("--recipient", required=True, help="who receives the copy (Art. 19)")
    p.add_argument("--by", metavar="WHO", help="who exported it (default: cli:<os user>)")
    p = command(
        "exports", _exports, "list the copies recipients hold; --stale: to notify", server=True
    )
    p.add_argument("--stale", action="store_true", help="only copies an erasure made stale")

    p = command(
        "access",
        _access,
        "what the store holds on a subject, its rows included (Art. 15, 20; audited)",
        store=False,
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", metavar="DIR", help="the store directory")
    where.add_argument(
        "--server",
        metavar="URL",
        help="ask a running forget serve instead (token in FORGET_TOKEN, scope audit)",
    )
    p.add_argument(
        "--subject-id-file",
        default="-",
        metavar="FILE",
        help="a file holding the subject id on one line (default -: stdin); never an "
        "argument, which ps shows to other users",
    )
    p.add_argument("--html", action="store_true", help="an HTML page instead of JSON")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")

    id_help = (
        "a file holding the subject id on one line (default -: stdin); never an argument, "
        "which ps shows to other users"
    )
    for name, text in (
        ("object", "the subject objects to a purpose (Art. 21): its models forget them"),
        ("restrict", "restrict a subject's processing (Art. 18), or --lift it"),
    ):
        p = command(name, _right, text + "; id on stdin; audited", store=False)
        where = p.add_mutually_exclusive_group(required=True)
        where.add_argument("--store", metavar="DIR", help="the store directory")
        where.add_argument(
            "--server",
            metavar="URL",
            help="ask a running forget serve instead (token in FORGET_TOKEN, scope erase)",
        )
        p.add_argument("--subject-id-file", default="-", metavar="FILE", help=id_help)
        p.add_argument("--by", metavar="WHO", help="who asked (default: cli:<os user>)")
        if name == "object":
            p.add_argument("purpose", help="the purpose objected to, e.g. marketing")
        else:
            p.add_argument(
                "--lift",
                action="store_true",
                help="lift the restriction: models take the rows back",
            )

    p = command("alias", _alias, "set, remove or list a model's aliases (promotion, canary)", False)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    by_help = "who made the change (audited; default: cli:<os user>)"
    a = actions.add_parser("set", help="point an alias at a version or a split (audited)")
    a.add_argument("--store", required=True, metavar="DIR", help="the store directory")
    a.add_argument("model")
    a.add_argument("alias", help="e.g. champion, canary; 'default' pins the bare model name")
    a.add_argument("target", type=_target, help="a version (3) or a split (1=0.9,2=0.1)")
    a.add_argument("--shadow", type=int, metavar="VERSION", help="scored alongside, not answered")
    a.add_argument("--by", metavar="WHO", help=by_help)
    a = actions.add_parser("rm", help="remove an alias (audited)")
    a.add_argument("--store", required=True, metavar="DIR", help="the store directory")
    a.add_argument("model")
    a.add_argument("alias")
    a.add_argument("--by", metavar="WHO", help=by_help)
    a = actions.add_parser("ls", help="list a model's aliases as JSON (read-only)")
    a.add_argument("--store", required=True, metavar="DIR", help="the store directory (read-only)")
    a.add_argument("model")

    p = command("purpose", _purpose, "declare processing purposes (Art. 21), or list them", False)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("declare", help="objections to it are taken from now on (audited)")
    a.add_argument("--store", required=True, metavar="DIR", help="the store directory")
    a.add_argument("purpose", help="a lower-case name, e.g. marketing")
    a.add_argument("--by", metavar="WHO", help=by_help)
    a = actions.add_parser("ls", help="the purposes, their model versions and objections")
    a.add_argument("--store", required=True, metavar="DIR", help="the store directory (read-only)")

    p = command(
        "retention", _retention, "datasets' retention periods (Art. 5(1)(e)) and expiry", False
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("set", help="let a dataset's rows expire a period after their time")
    a.add_argument("--store", required=True, metavar="DIR", help="the store directory")
    a.add_argument("dataset")
    a.add_argument(
        "--time-column", required=True, metavar="COLUMN", help="timestamps, dates, ISO 8601 "
        "text or seconds since 1970; a row without one never expires"
    )  # fmt: skip
    a.add_argument(
        "--period", required=True, help="an ISO 8601 duration: P30D, P6M, P1Y6M, P2W, PT36H"
    )
    a.add_argument("--by", metavar="WHO", help=by_help)
    a = actions.add_parser("rm", help="remove a dataset's retention policy (audited)")
    a.add_argument("--store", required=True, metavar="DIR", help="the store directory")
    a.add_argument("dataset")
    a.add_argument("--by", metavar="WHO", help=by_help)
    a = actions.add_parser("show", help="the policies and what expired, as JSON (read-only)")
    a.add_argument("--store", required=True, metavar="DIR", help="the store directory (read-only)")
    a.add_argument("--since", metavar="ISO8601", help="expiries from")
    a.add_argument("--until", metavar="ISO8601", help="expiries before")
    a = actions.add_parser(
        "expire", help="erase every row past its period now (a server's purger does it itself)"
    )
    a.add_argument("--store", required=True, metavar="DIR", help="the store directory")
    a.add_argument("--no-purge", action="store_true", help="leave the physical purge for later")

    p = command("versions", _versions, "delete model versions; keep the last N", False)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("rm", help="delete a version and its bytes (refused while aliased)")
    a.add_argument("--store", required=True, metavar="DIR", help="the store directory")
    a.add_argument("model")
    a.add_argument("version", type=int)
    a.add_argument("--by", metavar="WHO", help=by_help)
    a = actions.add_parser(
        "retention", help="show or set how many versions of each model are kept (JSON)"
    )
    a.add_argument("--store", required=True, metavar="DIR", help="the store directory")
    keep = a.add_mutually_exclusive_group()
    keep.add_argument(
        "--keep-last", type=int, metavar="N", help="keep the last N (and aliased) versions"
    )
    keep.add_argument("--off", action="store_true", help="keep every version")
    a.add_argument("--by", metavar="WHO", help=by_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # before the heavy imports: --help answers at once

    from api.auth import ApiKeyConfigError
    from cluster.errors import ClusterError
    from store.errors import StoreError

    try:
        return int(args.func(args))
    except (StoreError, ApiKeyConfigError, ClusterError, FileNotFoundError, _ServerError) as exc:
        print(f"forget {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
