"""Bulk erasure (account closures, a retention backlog): a batch against one request at a time.

Usage::

    python -m bench.erasure_batch            # adult 24,000 rows, 300 one by one, 4,000 in batches
    python -m bench.erasure_batch --quick    # 2,000 rows, 30 and 300 (what CI runs)

The store is the one ``bench.store_erasure`` builds (adult with made-up subject ids, one to
three rows each; HedgeCut, kNN and ridge regression), opened by the serving layer
(:class:`api.service.Service`, in process, its purger off; what the HTTP endpoints call, so
the figures leave out HTTP). The forest is warmed first (compiled scorer, rehearsed forget)
and the heap alive then is frozen out of the cycle collector's sight (``gc.freeze``), as
``forget serve`` does (``--no-freeze-heap``: not; unfrozen when the bench ends). Then, on the
same service, in this order:

1. **one at a time**: ``Service.erase`` per subject (``POST /v1/erasure-requests``): one
   transaction each, the models forgetting inside it;
2. **batch**: ``Service.erase_batch`` over lists of ``--batch`` subjects
   (``POST /v1/erasure-requests:batch``, ``forget erase --from-file``): each subject still gets
   its own request, forget-log entries, audit entries and receipt, ``BATCH_GROUP`` requests to
   a transaction.

Distinct subjects that hold rows throughout. Both phases end with every model having forgotten
(durable, served at the new revisions); the physical purge follows later in either case and is
not timed. Reported: subjects per second, and the per-subject latency (one at a time) or the
per-call latency (batch), median and p99.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from typing import Any

import numpy as np

from api.service import Service
from bench._common import latency_summary, table, write_json
from bench.store_erasure import _columns, _models
from store import ModelStore


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=24_000)
    ap.add_argument("--single", type=int, default=300, help="subjects erased one at a time")
    ap.add_argument("--bulk", type=int, default=4_000, help="subjects erased in batches")
    ap.add_argument("--batch", type=int, default=1_000, help="subjects per batch call")
    ap.add_argument("--quick", action="store_true", help="2,000 rows, 30 and 300 subjects")
    ap.add_argument(
        "--no-freeze-heap", dest="freeze", action="store_false",
        help="leave the warmed heap to the cycle collector (forget serve freezes it)",
    )  # fmt: skip
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    n, single, bulk, batch = (
        (2000, 30, 300, 100) if args.quick else (args.rows, args.single, args.bulk, args.batch)
    )
    cols, names, subjects = _columns(n)
    rng = np.random.default_rng(1)
    people = [f"person-{s:06d}" for s in rng.permutation(np.unique(subjects))]
    if single + bulk + 3 > len(people):
        ap.error(f"{n} rows hold {len(people)} subjects: fewer than --single + --bulk + 3")
    with tempfile.TemporaryDirectory() as tmp:
        with ModelStore.open(tmp) as st:
            st.ingest("adult", cols, subject_column="subject_id")
            for name, (est, label, feats) in _models(names).items():
                st.train(name, dataset="adult", estimator=est, label=label, features=feats)
        svc = Service.open(tmp, purge_interval=0, evidence_rate=0)
        try:
            svc.start()
            svc.warm()
            if args.freeze:  # as forget serve's startup (api.app)
                gc.collect()
                gc.freeze()
            for p in people[:3]:  # the first erasures plan queries and fill caches
                svc.erase(p, "art17-1-b")
            one = people[3 : 3 + single]
            lat = []
            t0 = time.perf_counter()
            for p in one:
                t = time.perf_counter()
                svc.erase(p, "art17-1-b")
                lat.append(time.perf_counter() - t)
            one_s = time.perf_counter() - t0
            many = people[3 + single : 3 + single + bulk]
            calls, failed = [], 0
            t0 = time.perf_counter()
            for start in range(0, len(many), batch):
                t = time.perf_counter()
                out = svc.erase_batch(many[start : start + batch], "art17-1-b")
                calls.append(time.perf_counter() - t)
                failed += sum("error" in o for o in out)
            bulk_s = time.perf_counter() - t0
            with svc.lock:
                assert svc.store.verify_audit_log().ok
        finally:
            gc.unfreeze()
            svc.close()
    if failed:
        raise RuntimeError(f"{failed} requests of the batches failed")
    ol, cl = latency_summary(lat), latency_summary(calls)
    rows = [
        {
            "path": "one at a time",
            "subjects": len(one),
            "subjects_per_s": len(one) / one_s,
            "ms_per_subject": one_s / len(one) * 1e3,
            "p50_ms": ol["p50_us"] / 1e3,
            "p99_ms": ol["p99_us"] / 1e3,
            "latency_of": "one request",
        },
        {
            "path": f"batches of {batch}",
            "subjects": len(many),
            "subjects_per_s": len(many) / bulk_s,
            "ms_per_subject": bulk_s / len(many) * 1e3,
            "p50_ms": cl["p50_us"] / 1e3,
            "p99_ms": cl["p99_us"] / 1e3,
            "latency_of": "one batch call",
        },
    ]
    speedup = rows[1]["subjects_per_s"] / rows[0]["subjects_per_s"]
    print(
        table(
            rows,
            [
                ("path", "path"),
                ("subjects", "subjects"),
                ("subjects_per_s", "subjects/s"),
                ("ms_per_subject", "ms per subject"),
                ("p50_ms", "p50 ms"),
                ("p99_ms", "p99 ms"),
                ("latency_of", "latency of"),
            ],
        )
    )
    print(f"\nbatch / one at a time: {speedup:.1f}x ({n} rows; forest, kNN and ridge forgetting)")
    payload = {
        "quick": args.quick, "dataset_rows": n, "heap_frozen": args.freeze, "rows": rows,
        "speedup": speedup,
    }  # fmt: skip
    path = write_json("erasure_batch-quick" if args.quick else "erasure_batch", payload, args.out)
    print(f"written: {path}")
    return payload


if __name__ == "__main__":
    main()
