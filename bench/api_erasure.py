"""Serving that never stalls: erasures over HTTP beside predictions, as a user meets them.

Usage::

    python -m bench.api_erasure                      # adult 24,000 rows
    python -m bench.api_erasure --quick              # 2,000 rows, a few dozen requests a phase
    python -m bench.api_erasure --profile storm.json # and a py-spy profile of a storm
    python -m bench.api_erasure --synthetic --rows 300000   # ten times adult, synthetic
                                                           # (api_erasure_synthetic.json)

The store is the one ``bench.store_erasure`` builds (adult with made-up subject ids, one to
three rows each; HedgeCut, kNN and ridge regression), served by ``forget serve`` in a
subprocess (its background purger off, ``--purge-interval 0``, so that purges happen only
where a phase asks for one). All load comes from other processes, ``bench._loadgen``'s
keep-alive connections in a closed loop: one-row predictions to the forest (distinct rows, so
the prediction cache does not answer them), erasures of distinct subjects that hold rows. One
server answers every phase, in this order:

1. cold vs warm: the first erasure once ``/healthz`` answers, then the next ones, one at a time
   and ``COLD_PAUSE_S`` apart, as a user sends them: the first and the hundredth alike follow a
   pause, so what tells them apart is what only the first pays (a kernel to compile, a cache to
   fill). Back to back, every erasure is faster than after a pause on this machine (the same
   one-subject DuckDB read: 0.75 ms back to back, 2.4 ms after 0.1 s of other work): a closed
   loop's hundredth against a first after a pause would count that as a start-up cost. The
   client's connection sends one ``GET /healthz`` first, so that its own first request (a new
   process's, ~2 ms more) is not counted as the server's first erasure;
2. erasures one at a time, alone;
3. predictions alone (8 connections): the idle reference;
4. erasures one at a time beside 8, then beside 64, predicting connections;
5. an erasure storm (8 erasing connections) alone, then beside 8 predicting connections;
6. purges (``POST /v1/admin/purge``: scheduled retrain checks, then artifact rewrite and
   compaction) while 8 connections predict and one erases, ``DURING_PAUSE_S`` apart, until
   the purge is answered (each purge purges the erasures made during the one before).

A prediction counts toward a phase when it overlapped the phase's window (the first erasure's
start to the last one's end, or the purge request), told apart on the system's monotonic clock
that every process shares. Server and clients share the machine's cores: the figures are what
a client on the same host sees, a floor for a server with cores of its own. The table puts
issue 15's targets (for 2 cores) beside the figures; the JSON's ``rows`` hold the same.

``--profile PATH`` runs one more storm beside predictions after the phases, with ``py-spy
record`` sampling the server (speedscope for a ``.json`` path, else a flame graph SVG), and
lists the project's frames most often on the stack; that storm's figures are not reported.
py-spy is not a dependency: ``pip install py-spy`` anywhere, ``--py-spy`` names the binary.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench._common import table, write_json
from bench.store_erasure import _columns, _models
from store import ModelStore

TOKEN = "bench-token-0002"
PREDICT = "/v1/models/hedgecut/predict"
ERASE = "/v1/erasure-requests"
PYSPY = "/tmp/pyspy-venv/bin/py-spy"  # where the bench's instructions install it


@dataclass(frozen=True)
class Sizes:
    """How much each phase does."""

    rows: int
    cold: int  # erasures in the cold-vs-warm series (its last is compared with its first)
    alone: int
    beside: int  # erasures beside predicting connections, each of 8 and 64
    storm: int  # erasures in each storm
    purges: int
    between_purges: int  # the most erasures sent during each purge (the next purges them)
    idle_s: float  # predictions alone
    cap_s: float  # no phase's load runs longer than this


COLD_PAUSE_S = 0.05  # between the erasures of the cold-vs-warm series
DURING_PAUSE_S = 0.02  # between the erasures sent during a purge

FULL = Sizes(24_000, 100, 200, 200, 800, 3, 1000, 5.0, 120.0)
QUICK = Sizes(2_000, 20, 20, 20, 60, 1, 100, 1.5, 30.0)


# ---------------------------------------------------------------------- store and bodies
def _build(
    directory: Path, n: int, synthetic: bool = False, defer_rows: int | None = None
) -> tuple[list[str], np.ndarray, list[str]]:
    """The store of ``bench.store_erasure``; the forest's features, its rows, and the subject
    ids in a seeded random order (every one holds rows). ``synthetic``: ``n`` rows of
    ``make_classification`` (10 informative features of adult's 14, 5 % label noise) under
    adult's column names instead, for data bigger than adult; ``defer_rows`` for the forest."""
    cols, names, subjects = _columns(n if not synthetic else 10)
    if synthetic:
        from sklearn.datasets import make_classification

        Xs, ys = make_classification(n, len(names), n_informative=10, flip_y=0.05, random_state=0)
        subjects = np.repeat(np.arange(n), np.random.default_rng(0).integers(1, 4, size=n))[:n]
        cols = {
            "subject_id": [f"person-{s:06d}" for s in subjects],
            "income": ys.astype(float).tolist(),
        }
        cols |= {name: Xs[:, j].round(6).tolist() for j, name in enumerate(names)}
    models = _models(names)
    models["hedgecut"][0].set_params(defer_rows=defer_rows)
    with ModelStore.open(directory) as st:
        st.ingest("adult", cols, subject_column="subject_id")
        for name, (est, label, feats) in models.items():
            st.train(name, dataset="adult", estimator=est, label=label, features=feats)
    X = np.column_stack([np.asarray(cols[c], dtype=float) for c in names])
    people = np.random.default_rng(1).permutation(np.unique(subjects))
    return names, X, [f"person-{s:06d}" for s in people]


def _prediction_bodies(path: Path, names: list[str], X: np.ndarray, phase: int) -> Path:
    """One-row bodies, distinct from every other phase's (``fnlwgt`` moved by a thousandth per
    phase): a repeated body would be answered by the prediction cache, not by the model."""
    with path.open("w") as f:
        for x in X:
            row = dict(zip(names, x.tolist(), strict=True))
            row["fnlwgt"] += phase * 1e-3
            f.write(json.dumps({"rows": [row]}) + "\n")
    return path


def _erasure_bodies(path: Path, subjects: list[str]) -> Path:
    path.write_text("".join(json.dumps({"subject_id": s}) + "\n" for s in subjects))
    return path


# ---------------------------------------------------------------------- processes
class _Server:
    """``forget serve`` on a free port in a subprocess, its output in ``log``."""

    def __init__(
        self, directory: Path, log: Path, evidence_rate: float, flags: Sequence[str] = ()
    ) -> None:
        from api.server import free_port

        self.port, self.log = free_port(), log
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "FORGET_API_KEYS": json.dumps({TOKEN: ["admin"]})}
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "forget.cli", "serve", "--store", str(directory),
                 "--port", str(self.port), "--log-level", "warning", "--purge-interval", "0",
                 "--evidence-rate", str(evidence_rate), *flags],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip

    def wait_healthy(self, timeout: float = 180.0) -> float:
        """Poll ``/healthz`` until it answers ok; the seconds since the process started."""
        t0, deadline = time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log.read_text()}")
            try:
                r = httpx.get(self.url + "/healthz", timeout=1)
                if r.status_code == 200 and r.json().get("status") == "ok":
                    return time.monotonic() - t0
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        self.proc.kill()
        raise RuntimeError(f"the server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Load:
    """One ``bench._loadgen`` process; ``finish`` stops it and reads its record."""

    def __init__(
        self,
        server: _Server,
        work: Path,
        tag: str,
        path: str,
        bodies: Path,
        connections: int,
        seconds: float,
        *,
        once: bool,
        pause: float = 0.0,
        warm_path: str | None = None,
    ) -> None:
        self.record, self.ready = work / f"{tag}.record.json", work / f"{tag}.ready"
        self.stop_file = work / f"{tag}.stop"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench._loadgen", "--port", str(server.port), "--path", path,
             "--bodies", str(bodies), "--token", TOKEN, "--connections", str(connections),
             "--seconds", str(seconds), "--record", str(self.record), "--ready-file",
             str(self.ready), "--stop-file", str(self.stop_file), "--pause", str(pause),
             *(["--once"] * once), *(["--warm-path", warm_path] if warm_path else [])],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def wait_ready(self) -> None:
        while not self.ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the load generator exited with {self.proc.returncode}")
            time.sleep(0.01)

    def finish(self, stop: bool = True) -> np.ndarray:
        """Stop (or with ``stop=False`` await) the load; its requests as rows of
        ``[start, seconds, status]``."""
        if stop:
            self.stop_file.touch()
        out, _ = self.proc.communicate(timeout=600)
        if self.proc.returncode:
            raise RuntimeError(f"the load generator failed ({self.proc.returncode}): {out}")
        return np.asarray(json.loads(self.record.read_text()), dtype=float).reshape(-1, 3)


def _window(rec: np.ndarray) -> tuple[float, float]:
    """From the first request's start to the last one's end."""
    return float(rec[:, 0].min()), float((rec[:, 0] + rec[:, 1]).max())


def _stats(rec: np.ndarray, window: tuple[float, float] | None = None) -> dict[str, Any]:
    """Latency percentiles (ms), rate and statuses of the requests (within ``window``: those
    that overlapped it); the rate is over the window, or over the requests' own span."""
    if window is not None:
        lo, hi = window
        rec = rec[(rec[:, 0] < hi) & (rec[:, 0] + rec[:, 1] > lo)]
    if not len(rec):
        return {"n": 0, "statuses": {}}
    lo, hi = window if window is not None else _window(rec)
    ms = rec[:, 1] * 1e3
    codes, counts = np.unique(rec[:, 2].astype(int), return_counts=True)
    return {
        "n": len(rec),
        "p50_ms": float(np.median(ms)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "per_s": len(rec) / max(hi - lo, 1e-9),
        "window_s": hi - lo,
        "statuses": {str(c): int(k) for c, k in zip(codes, counts, strict=True)},
    }


# ---------------------------------------------------------------------- profile
def _top_frames(path: Path, k: int = 12) -> dict[str, list[dict[str, Any]]]:
    """From a speedscope file: the frames most often on the stack (inclusive), those of the
    project's own packages alone (``project``: where the server's time goes, below the
    server's and the standard library's scaffolding), and those most often on top (self), as
    shares of all samples of every active thread."""
    doc = json.loads(path.read_text())
    frames = doc["shared"]["frames"]
    incl: dict[int, float] = {}
    own: dict[int, float] = {}
    total = 0.0
    for prof in doc["profiles"]:
        for stack, w in zip(prof["samples"], prof["weights"], strict=True):
            total += w
            if stack:
                own[stack[-1]] = own.get(stack[-1], 0.0) + w
            for f in set(stack):
                incl[f] = incl.get(f, 0.0) + w

    def name(i: int) -> str:
        f = frames[i]
        where = Path(f.get("file") or "?").name
        return f"{f['name']} ({where}:{f.get('line', '?')})"

    def top(d: dict[int, float]) -> list[dict[str, Any]]:
        best = sorted(d.items(), key=lambda kv: -kv[1])[:k]
        return [{"frame": name(i), "share": w / total} for i, w in best]

    root = Path(__file__).resolve().parents[1]
    ours = {root / p for p in ("api", "store", "forget")}
    entry = {root / "forget" / "cli.py", root / "api" / "server.py"}  # under every request

    def own_code(i: int) -> bool:
        file = Path(frames[i].get("file") or "/")
        return bool(ours & set(file.parents)) and file not in entry

    project = {i: w for i, w in incl.items() if own_code(i)}
    return {"inclusive": top(incl), "project": top(project), "self": top(own)}


# ---------------------------------------------------------------------- phases
class _Bench:
    """The phases against one server; each erasure takes subjects no other has taken."""

    def __init__(
        self,
        server: _Server,
        work: Path,
        names: list[str],
        X: np.ndarray,
        subjects: list[str],
        sizes: Sizes,
    ) -> None:
        self.server, self.work, self.names, self.X, self.sizes = server, work, names, X, sizes
        self._subjects: Iterator[str] = iter(subjects)
        self._count = 0

    def _tag(self, what: str) -> str:
        self._count += 1
        return f"{self._count:02d}-{what}"

    def _erasures(self, n: int) -> Path:
        subjects = list(itertools.islice(self._subjects, n))
        if len(subjects) < n:
            raise ValueError(f"the store has too few subjects for the phases: {n} more wanted")
        return _erasure_bodies(self.work / f"{self._tag('erase')}.jsonl", subjects)

    def erase(
        self, n: int, connections: int = 1, pause: float = 0.0, warm_path: str | None = None
    ) -> _Load:
        return _Load(
            self.server,
            self.work,
            self._tag("erase"),
            ERASE,
            self._erasures(n),
            connections,
            self.sizes.cap_s,
            once=True,
            pause=pause,
            warm_path=warm_path,
        )

    def predict(self, connections: int, seconds: float | None = None) -> _Load:
        tag = self._tag("predict")
        bodies = _prediction_bodies(self.work / f"{tag}.jsonl", self.names, self.X, self._count)
        load = _Load(
            self.server,
            self.work,
            tag,
            PREDICT,
            bodies,
            connections,
            seconds or self.sizes.cap_s,
            once=False,
        )
        load.wait_ready()
        return load

    def erasures_beside(self, n: int, erasing: int, predicting: int) -> dict[str, Any]:
        """``n`` erasures on ``erasing`` connections, ``predicting`` connections predicting
        throughout (none: alone); the stats of both within the erasures' window."""
        pred = self.predict(predicting) if predicting else None
        if pred is not None:
            time.sleep(0.3)  # the predictions are under way before the first erasure
        er = self.erase(n, erasing).finish(stop=False)
        window = _window(er)
        out = {"erasures": _stats(er)}
        if pred is not None:
            out["predictions"] = _stats(pred.finish(), window)
        return out

    def purges(self) -> dict[str, Any]:
        """Purges while 8 connections predict and one erases; the predictions and erasures
        overlapping any purge."""
        recs, erased, windows, answers = [], [], [], []
        with httpx.Client(
            base_url=self.server.url, timeout=600, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http:
            for _ in range(self.sizes.purges):
                pred = self.predict(8)
                time.sleep(0.3)
                er = self.erase(self.sizes.between_purges, pause=DURING_PAUSE_S)
                er.wait_ready()
                t0 = time.monotonic()
                r = http.post("/v1/admin/purge")
                t1 = time.monotonic()
                time.sleep(0.3)
                erased.append(er.finish())
                recs.append(pred.finish())
                r.raise_for_status()
                windows.append((t0, t1))
                answer = r.json()  # its request ids: how many is enough here
                answers.append(answer | {"requests": len(answer["requests"]), "request_s": t1 - t0})
        parts = [_stats(rec, w) for rec, w in zip(recs, windows, strict=True)]
        joined = np.concatenate(
            [rec[(rec[:, 0] < hi) & (rec[:, 0] + rec[:, 1] > lo)]
             for rec, (lo, hi) in zip(recs, windows, strict=True)]
        )  # fmt: skip
        during = _stats(joined)
        during["per_s"] = len(joined) / sum(hi - lo for lo, hi in windows)
        erasures = _stats(np.concatenate(
            [rec[(rec[:, 0] < hi) & (rec[:, 0] + rec[:, 1] > lo)]
             for rec, (lo, hi) in zip(erased, windows, strict=True)]
        ))  # fmt: skip
        return {
            "predictions": during, "erasures": erasures, "per_purge": parts, "purges": answers,
        }  # fmt: skip


def _profile(bench: _Bench, path: Path, n: int, pyspy: str) -> dict[str, Any]:
    """One more storm (8 erasing beside 8 predicting connections) under ``py-spy record`` on
    the server; its figures are not reported (the sampler slows the server)."""
    fmt = "speedscope" if path.suffix == ".json" else "flamegraph"
    spy = subprocess.Popen(
        [pyspy, "record", "--pid", str(bench.server.proc.pid), "--output", str(path),
         "--format", fmt, "--rate", "200"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    time.sleep(1.0)  # py-spy attaches
    if spy.poll() is not None:
        raise RuntimeError(f"py-spy could not attach: {spy.communicate()[0]}")
    bench.erasures_beside(n, erasing=8, predicting=8)
    spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
    out, _ = spy.communicate(timeout=120)
    if not path.exists():
        raise RuntimeError(f"py-spy wrote no profile: {out}")
    doc: dict[str, Any] = {"path": str(path), "format": fmt, "erasures": n}
    if fmt == "speedscope":
        doc |= _top_frames(path)
    return doc


# ---------------------------------------------------------------------- report
def _row(
    scenario: str,
    what: str,
    s: dict[str, Any],
    target: str = "",
    met: bool | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "what": what,
        "n": s.get("n"),
        "p50_ms": s.get("p50_ms"),
        "p99_ms": s.get("p99_ms"),
        "max_ms": s.get("max_ms"),
        "per_s": s.get("per_s"),
        "target": target,
        "met": met,
        **extra,
    }


def _rows(ph: dict[str, Any], sizes: Sizes) -> list[dict[str, Any]]:
    """The figures issue 15 asks for, one row each, with the targets beside them."""
    idle = ph["idle"]
    stall = 20.0

    def under(s: dict[str, Any], p50: float, p99: float) -> bool:
        return bool(s["n"] and s["p50_ms"] < p50 and s["p99_ms"] < p99)

    def calm(s: dict[str, Any]) -> dict[str, Any]:
        ratio = s["p99_ms"] / idle["p99_ms"]
        met = bool(ratio <= 2.0 and s["max_ms"] < stall)
        return {"met": met, "p99_vs_idle": ratio}

    cold = ph["cold"]["erasures_ms"]
    first, last = cold[0], cold[-1]
    pace = f"after /healthz ok, {COLD_PAUSE_S * 1e3:.0f} ms apart"
    e8, e64 = ph["beside 8"]["erasures"], ph["beside 64"]["erasures"]
    storm, stormp = ph["storm"]["erasures"], ph["storm beside 8"]
    pred_target = f"p99 <= 2x idle; max < {stall:.0f} ms"
    return [
        _row(pace, "1st erasure", {"n": 1, "p50_ms": first, "max_ms": first},
             f"~ {len(cold)}th (<= 2x)", bool(first <= 2 * last)),
        _row(pace, f"{len(cold)}th erasure", {"n": 1, "p50_ms": last, "max_ms": last}),
        _row(pace, f"1st to {len(cold)}th erasure", ph["cold"]),
        _row("alone", "erasure", ph["alone"]["erasures"]),
        _row("beside 8 predicting connections", "erasure", e8, "p50 < 10 ms, p99 < 25 ms",
             under(e8, 10, 25)),
        _row("beside 64 predicting connections", "erasure", e64, "p50 < 10 ms, p99 < 25 ms",
             under(e64, 10, 25)),
        _row("storm: 8 erasing connections", "erasure", storm, ">= 500 /s",
             bool(storm["per_s"] >= 500)),
        _row("storm beside 8 predicting connections", "erasure", stormp["erasures"],
             ">= 500 /s", bool(stormp["erasures"]["per_s"] >= 500)),
        _row("idle: 8 predicting connections", "prediction", idle, f"max < {stall:.0f} ms",
             bool(idle["max_ms"] < stall), p99_vs_idle=1.0),
        _row("beside 8 predicting connections", "prediction", ph["beside 8"]["predictions"],
             pred_target, **calm(ph["beside 8"]["predictions"])),
        _row("storm beside 8 predicting connections", "prediction", stormp["predictions"],
             pred_target, **calm(stormp["predictions"])),
        _row(f"purge ({sizes.purges}x POST /v1/admin/purge)", "prediction",
             ph["purge"]["predictions"], pred_target, **calm(ph["purge"]["predictions"])),
        _row(f"purge, beside 8 predicting connections, {DURING_PAUSE_S * 1e3:.0f} ms apart",
             "erasure", ph["purge"]["erasures"], "p50 < 10 ms, p99 < 25 ms",
             under(ph["purge"]["erasures"], 10, 25)),
    ]  # fmt: skip


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "NO"
    return v


def run(
    sizes: Sizes,
    evidence_rate: float,
    profile: Path | None = None,
    pyspy: str = PYSPY,
    flags: Sequence[str] = (),
    synthetic: bool = False,
    defer_rows: int | None = None,
) -> dict[str, Any]:
    """Build the store, serve it (``forget serve`` with ``flags`` added), run every phase
    against the one server; the payload."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        names, X, subjects = _build(work / "store", sizes.rows, synthetic, defer_rows)
        build_s = time.perf_counter() - t
        server = _Server(work / "store", work / "server.log", evidence_rate, flags)
        ph: dict[str, Any] = {}
        try:
            start_s = server.wait_healthy()
            bench = _Bench(server, work, names, X, subjects, sizes)
            # the client's own first request (GET /healthz) is not the server's first erasure
            cold = bench.erase(sizes.cold, pause=COLD_PAUSE_S, warm_path="/healthz")
            cold = cold.finish(stop=False)
            ph["cold"] = {"erasures_ms": (cold[:, 1] * 1e3).tolist(), **_stats(cold)}
            first, last = ph["cold"]["erasures_ms"][0], ph["cold"]["erasures_ms"][-1]
            print(
                f"  server up in {start_s:.1f} s; 1st erasure {first:.1f} ms, "
                f"{sizes.cold}th {last:.1f} ms",
                flush=True,
            )
            ph["alone"] = bench.erasures_beside(sizes.alone, 1, 0)
            ph["idle"] = _stats(bench.predict(8, sizes.idle_s).finish(stop=False))
            for k in (8, 64):
                ph[f"beside {k}"] = bench.erasures_beside(sizes.beside, 1, k)
            ph["storm"] = bench.erasures_beside(sizes.storm, 8, 0)
            ph["storm beside 8"] = bench.erasures_beside(sizes.storm, 8, 8)
            print("  erasure phases done; purging", flush=True)
            ph["purge"] = bench.purges()
            prof = _profile(bench, profile, sizes.storm, pyspy) if profile else None
            with httpx.Client(
                base_url=server.url, timeout=120, headers={"Authorization": f"Bearer {TOKEN}"}
            ) as http:
                verified = http.get("/v1/audit/verify").json()["ok"]
        except BaseException:
            print(server.log.read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            server.stop()
    statuses = [
        *(ph[k]["erasures"]["statuses"] for k in ph if "erasures" in ph[k]),
        ph["cold"]["statuses"],
    ]
    pred_statuses = [
        *(ph[k]["predictions"]["statuses"] for k in ph if "predictions" in ph[k]),
        ph["idle"]["statuses"],
    ]
    rows = _rows(ph, sizes)
    return {
        "quick": sizes is QUICK,
        "store_rows": sizes.rows,
        "data": "synthetic" if synthetic else "adult",
        "defer_rows": defer_rows,
        "sizes": asdict(sizes),
        "evidence_rate": evidence_rate,
        "server": " ".join(["forget serve --purge-interval 0", *flags]),
        "loadavg_before": load_before,
        "build_s": build_s,
        "server_start_s": start_s,
        "all_erasures_accepted": all(set(s) <= {"201", "202"} for s in statuses),
        "all_predictions_ok": all(set(s) == {"200"} for s in pred_statuses),
        "audit_verified": verified,
        "rows": rows,
        "phases": ph,
        "profile": prof,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=FULL.rows, help="adult rows in the store")
    ap.add_argument(
        "--synthetic",
        action="store_true",
        help="--rows synthetic rows (make_classification under adult's columns) instead",
    )
    ap.add_argument("--defer-rows", type=int, default=None, help="the forest's defer_rows")
    ap.add_argument("--quick", action="store_true", help="2,000 rows, short phases")
    ap.add_argument("--evidence-rate", type=float, default=0.1, help="as forget serve's default")
    ap.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy record the server in an extra storm: .json speedscope, else svg",
    )
    ap.add_argument("--py-spy", default=shutil.which("py-spy") or PYSPY, help="py-spy to run")
    ap.add_argument(
        "--serve-flag",
        action="append",
        default=[],
        metavar="FLAG",
        help="add a flag to forget serve (repeat it), e.g. --serve-flag=--no-monitoring",
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    sizes = QUICK if args.quick else replace(FULL, rows=args.rows)
    payload = run(
        sizes,
        args.evidence_rate,
        args.profile,
        args.py_spy,
        args.serve_flag,
        args.synthetic,
        args.defer_rows,
    )
    print()
    print(
        table(
            [{k: _cell(v) for k, v in r.items()} for r in payload["rows"]],
            [
                ("scenario", "scenario"),
                ("what", "what"),
                ("n", "n"),
                ("p50_ms", "p50 ms"),
                ("p99_ms", "p99 ms"),
                ("max_ms", "max ms"),
                ("per_s", "per s"),
                ("p99_vs_idle", "p99 / idle p99"),
                ("target", "target (2 cores)"),
                ("met", "met"),
            ],
        )
    )
    purges = payload["phases"]["purge"]["purges"]
    took = ", ".join(f"{p['request_s']:.2f} s" for p in purges)
    print(
        f"\npurges: {took}; erasures all accepted: {payload['all_erasures_accepted']}; "
        f"predictions all 200: {payload['all_predictions_ok']}; "
        f"audit verified: {payload['audit_verified']}"
    )
    if payload["profile"]:
        print(f"profile: {payload['profile']['path']}")
        for f in payload["profile"].get("project", []):
            print(f"  {100 * f['share']:5.1f}%  {f['frame']}")
    name = "api_erasure" + ("-quick" if args.quick else "_synthetic" if args.synthetic else "")
    path = write_json(name, payload, args.out)
    print(f"\nwritten: {path}")
    return payload


if __name__ == "__main__":
    main()
