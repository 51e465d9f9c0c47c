"""Who asked and who handled an erasure request, recorded by the store (issue 14, item 6)."""

from __future__ import annotations

import socket

import forget
from store import ModelStore
from tests.store.helpers import VICTIM


def test_the_audit_entry_carries_who_asked_and_the_chain_still_verifies(populated: ModelStore):
    receipt = populated.erase(VICTIM, legal_ground="art17-1-b", requested_by="dpo@acme")
    assert receipt.requested_by == "dpo@acme"
    assert receipt.handled_by == f"forget {forget.__version__} (python) on {socket.gethostname()}"
    report = populated.erasure_report(receipt.request_id)
    committed = [e for e in report["audit_entries"] if e["kind"] == "erasure.committed"]
    assert committed and committed[0]["payload"]["requested_by"] == "dpo@acme"
    assert committed[0]["payload"]["handled_by"] == receipt.handled_by
    assert populated.verify_audit_log().ok


def test_requests_without_a_requester_say_so(populated: ModelStore):
    receipt = populated.erase(VICTIM, legal_ground="art17-1-b")
    report = populated.erasure_report(receipt.request_id)
    assert receipt.requested_by is None
    assert report["requested_by"].startswith("not given")  # (a Python API call)


def test_the_cli_records_its_user_or_the_given_requester(tmp_path):
    import getpass
    import subprocess
    import sys

    from tests.store.helpers import populate

    directory = tmp_path / "store"
    with ModelStore.open(directory) as st:
        populate(st)

    def erase(*extra: str) -> str:
        res = subprocess.run(
            [sys.executable, "-m", "forget.cli", "erase", "--store", str(directory), *extra],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert res.returncode in (0, 3), res.stderr
        return res.stdout.split()[1].rstrip(":")

    first = erase(VICTIM)
    second = erase("someone-else", "--requested-by", "ticket-4711")
    with ModelStore.open(directory) as st:
        a, b = st.erasure_request(first), st.erasure_request(second)
    assert a.requested_by == f"cli:{getpass.getuser()}" and b.requested_by == "ticket-4711"
    assert a.handled_by == f"forget {forget.__version__} (cli) on {socket.gethostname()}"
