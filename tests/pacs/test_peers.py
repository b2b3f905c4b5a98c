"""Known peers (registry and `pacs peer`) and the calling-AE policy (PS3.8 9.3.4 A-ASSOCIATE-RJ)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from ndt_pacs.cli import main
from pacs.server import DicomListener
from pacs.settings import DicomSettings
from storage.archive import Archive
from storage.audit import Actor
from storage.errors import NotFound
from storage.records.peers import InvalidPeer, PeerRegistry
from tests.support.retrieve_helpers import audit_rows

ADMIN = Actor("admin", kind="user")


def test_registry_add_list_get_remove_audited(archive: Archive):
    peers = PeerRegistry(archive.db)
    added = peers.add("CT_SCANNER_01", "10.0.0.5", 104, ADMIN, allow=["store", "query"], description="bay 3")
    assert added.permissions == ["store", "query"]
    peers.add("ARCHIVE2", "archive2.example", 11112, ADMIN)
    assert [p.ae_title for p in peers.list()] == ["ARCHIVE2", "CT_SCANNER_01"]
    got = peers.get("CT_SCANNER_01")
    assert got is not None
    assert (got.host, got.port, got.description, got.allow_move_destination) == ("10.0.0.5", 104, "bay 3", False)
    assert peers.get("ARCHIVE2").permissions == ["store", "query", "retrieve", "move"]  # type: ignore[union-attr]
    peers.remove("ARCHIVE2", ADMIN)
    assert peers.get("ARCHIVE2") is None
    with pytest.raises(NotFound):
        peers.remove("ARCHIVE2", ADMIN)
    assert [r.detail["ae_title"] for r in audit_rows(archive, "peer_add")] == ["CT_SCANNER_01", "ARCHIVE2"]
    assert [r.actor for r in audit_rows(archive, "peer_remove")] == ["user:admin"]


@pytest.mark.parametrize(
    ("ae_title", "host", "port", "allow"),
    [
        ("", "h", 104, ["store"]),
        ("SEVENTEEN_CHARS_X", "h", 104, ["store"]),
        ("BACK\\SLASH", "h", 104, ["store"]),
        ("CTRL\x07", "h", 104, ["store"]),
        ("OK", "", 104, ["store"]),
        ("OK", "evil host", 104, ["store"]),
        ("OK", "h", 0, ["store"]),
        ("OK", "h", 65536, ["store"]),
        ("OK", "h", 104, ["teleport"]),
    ],
)
def test_registry_rejects_invalid_peers_and_changes_nothing(
    archive: Archive, ae_title: str, host: str, port: int, allow: list[str]
):
    peers = PeerRegistry(archive.db)
    with pytest.raises(InvalidPeer):
        peers.add(ae_title, host, port, ADMIN, allow=allow)
    assert peers.list() == []
    assert audit_rows(archive, "peer_add") == []


def test_registry_refuses_duplicate(archive: Archive):
    peers = PeerRegistry(archive.db)
    peers.add("DUP", "127.0.0.1", 104, ADMIN)
    with pytest.raises(InvalidPeer, match="already exists"):
        peers.add("DUP", "127.0.0.2", 105, ADMIN)
    assert peers.get("DUP").host == "127.0.0.1"  # type: ignore[union-attr]


def test_cli_peer_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    def pacs(*args: str) -> tuple[int, str, str]:
        code = main([*args, "--data-dir", str(tmp_path / "data")])
        out, err = capsys.readouterr()
        return code, out, err

    code, _, err = pacs("peer", "add", "DEST", "--host", "127.0.0.1", "--port", "4242", "--allow", "move,retrieve")
    assert code == 0, err
    _, listed, _ = pacs("peer", "list")
    assert "DEST" in listed
    assert "127.0.0.1:4242" in listed
    assert "retrieve,move" in listed
    code, _, err = pacs("peer", "add", "TOO_LONG_AE_TITLE_X", "--host", "h", "--port", "1")
    assert code == 2
    assert "1 to 16 characters" in err
    assert pacs("peer", "remove", "DEST")[0] == 0
    assert "DEST" not in pacs("peer", "list")[1]
    assert pacs("peer", "remove", "DEST")[0] == 2


# -- association policy -------------------------------------------------------------------------------------


@pytest.fixture
def strict_listener(archive: Archive) -> Iterator[DicomListener]:
    settings = DicomSettings(host="127.0.0.1", dicom_port=0, ae_title="NDTPACS", strict_ae=True)
    listener = DicomListener(archive, settings)
    listener.start()
    yield listener
    listener.stop(grace=5)


def _associate(port: int, calling: str, called: str = "NDTPACS", bind: str = "127.0.0.1"):
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    return ae.associate("127.0.0.1", port, ae_title=called, bind_address=(bind, 0))


def _rejection(assoc) -> tuple[int, int, int]:
    primitive = assoc.acceptor.primitive
    return primitive.result, primitive.result_source, primitive.diagnostic


def test_strict_mode_rejects_unknown_ae(archive: Archive, strict_listener: DicomListener):
    assoc = _associate(strict_listener.port, "STRANGER")
    assert assoc.is_rejected
    # rejected-permanent, DICOM UL service-user, calling-AE-title-not-recognized
    assert _rejection(assoc) == (0x01, 0x01, 0x03)
    record = audit_rows(archive, "associate")[-1]
    assert (record.actor, record.outcome) == ("ae:STRANGER", "rejected")
    assert record.actor_address.startswith("127.0.0.1:")  # type: ignore[union-attr]


def test_strict_mode_rejects_known_ae_from_wrong_address(archive: Archive, strict_listener: DicomListener):
    PeerRegistry(archive.db).add("FARAWAY", "127.0.0.2", 104, ADMIN)
    assoc = _associate(strict_listener.port, "FARAWAY", bind="127.0.0.1")
    assert assoc.is_rejected
    assert _rejection(assoc) == (0x01, 0x01, 0x03)
    # The same AE from its registered address is accepted.
    assoc = _associate(strict_listener.port, "FARAWAY", bind="127.0.0.2")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0
    assoc.release()
    outcomes = [(r.actor, r.outcome) for r in audit_rows(archive, "associate")]
    assert outcomes == [("ae:FARAWAY", "rejected"), ("ae:FARAWAY", "accepted")]


def test_strict_mode_accepts_known_peer_by_host_name(archive: Archive, strict_listener: DicomListener):
    PeerRegistry(archive.db).add("LOCAL", "localhost", 104, ADMIN)
    assoc = _associate(strict_listener.port, "LOCAL")
    assert assoc.is_established
    assoc.release()


def test_called_ae_must_be_ours(archive: Archive, dicom_listener: DicomListener):
    assoc = _associate(dicom_listener.port, "ANYONE", called="SOMEONE_ELSE")
    assert assoc.is_rejected
    assert _rejection(assoc) == (0x01, 0x01, 0x07)  # called-AE-title-not-recognized
    assert audit_rows(archive, "associate")[-1].outcome == "rejected"


def test_default_mode_accepts_and_audits_any_ae(archive: Archive, dicom_listener: DicomListener):
    assoc = _associate(dicom_listener.port, "ANYONE")
    assert assoc.is_established
    assoc.release()
    record = audit_rows(archive, "associate")[-1]
    assert (record.actor, record.outcome, record.detail["called_ae"]) == ("ae:ANYONE", "accepted", "NDTPACS")


def test_known_peer_gets_only_its_permissions(archive: Archive, strict_listener: DicomListener, tmp_path: Path):
    from pydicom.uid import CTImageStorage
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    from tests.support.factories import make_instance

    PeerRegistry(archive.db).add("QUERYONLY", "127.0.0.1", 104, ADMIN, allow=["query"])
    ae = AE(ae_title="QUERYONLY")
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", strict_listener.port, ae_title="NDTPACS")
    assert assoc.is_established
    try:
        assert assoc.send_c_store(make_instance()).Status == 0x0124  # NOT_AUTHORIZED: may not store
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = ""
        responses = list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
    finally:
        assoc.release()
    assert responses[-1][0].Status == 0x0000  # may query
    assert audit_rows(archive, "store") == []


def test_peer_tied_to_a_device_account_is_one_actor_over_dimse_and_http(
    archive: Archive, dicom_listener: DicomListener, tmp_path: Path
):
    """C-STORE from the recognised peer and STOW-RS with its account's token are audited as the same actor."""
    import httpx
    from pydicom.uid import CTImageStorage

    from tests.support.accounts import add_account, bearer, token_for
    from tests.support.factories import make_instance, write_part10
    from tests.support.webutil import http_server

    add_account(archive.db, "ct-bay-3", "device", password=None)
    add_account(archive.db, "ines", "inspector")
    with pytest.raises(InvalidPeer, match="device role"):
        PeerRegistry(archive.db).add("CTBAY3", "127.0.0.1", 104, ADMIN, user="ines")
    assert PeerRegistry(archive.db).add("CTBAY3", "127.0.0.1", 104, ADMIN, user="ct-bay-3").user == "ct-bay-3"
    assert PeerRegistry(archive.db).get("CTBAY3").user == "ct-bay-3"  # type: ignore[union-attr]
    ae = AE(ae_title="CTBAY3")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", dicom_listener.port, ae_title="NDTPACS")
    assert assoc.is_established
    try:
        assert assoc.send_c_store(make_instance()).Status == 0x0000
    finally:
        assoc.release()
    other = AE(ae_title="OTHER")  # not the peer: stays an AE title
    other.add_requested_context(CTImageStorage)
    assoc = other.associate("127.0.0.1", dicom_listener.port, ae_title="NDTPACS")
    try:
        assert assoc.send_c_store(make_instance()).Status == 0x0000
    finally:
        assoc.release()
    token = token_for(archive.db, "ct-bay-3")
    body = write_part10(make_instance(), tmp_path / "web.dcm").read_bytes()
    with http_server(archive, role=None) as base:
        stored = httpx.post(
            f"{base}/dicom-web/studies",
            content=b"--b\r\nContent-Type: application/dicom\r\n\r\n" + body + b"\r\n--b--\r\n",
            headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b', **bearer(token)},
        )
        assert stored.status_code == 200, stored.text
    actors = sorted(row.actor for row in audit_rows(archive, "store"))
    assert actors == ["ae:OTHER", "device:ct-bay-3", "device:ct-bay-3"]
