"""Container health probes: ``python -m ndt_pacs.healthcheck dicom|http`` (exit 0 when healthy).

The DICOM probe is a real C-ECHO (PS3.7 §9.1.5) and releases its association;
a bare TCP connect would hold an association slot until the ARTIM timer expires.
"""

from __future__ import annotations

import sys
import urllib.request

from pacs.service_uids import VERIFICATION
from pacs.settings import DicomSettings
from viewer.settings import HttpSettings

CALLING_AE = "HEALTHCHECK"


def dicom_ok(host: str = "127.0.0.1") -> bool:
    """True when our listener accepts an association and answers C-ECHO with Success."""
    from pynetdicom import AE

    settings = DicomSettings()
    ae = AE(ae_title=CALLING_AE)
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 10
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate(host, settings.dicom_port, ae_title=settings.ae_title)
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return bool(status) and int(status.Status) == 0
    finally:
        assoc.release()


def http_ok(host: str = "127.0.0.1") -> bool:
    """True when ``/healthz`` answers 200 (database and object store up)."""
    url = f"http://{host}:{HttpSettings().http_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # fixed loopback URL
            return int(response.status) == 200
    except OSError:
        return False


def main(argv: list[str]) -> int:
    """Run the probe named by ``argv[0]``."""
    probes = {"dicom": dicom_ok, "http": http_ok}
    if len(argv) != 1 or argv[0] not in probes:
        sys.stderr.write("usage: python -m ndt_pacs.healthcheck dicom|http\n")
        return 2
    return 0 if probes[argv[0]]() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
