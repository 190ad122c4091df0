"""Host-mode identity: the workload named by the subject of the host's identity
certificate (in production provisioned at boot). Parsed with `cryptography`."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from schemas.errors import FlowattrError


class IdentityError(FlowattrError, ValueError):
    pass


def workload_from_certificate(path: Path) -> str:
    """The subject's common name (CN) of a PEM certificate is the workload."""
    try:
        cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise IdentityError(f"cannot read identity certificate {path}: {exc}") from exc
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or not str(names[0].value).strip():
        raise IdentityError(f"identity certificate {path} has no subject CN naming the workload")
    return str(names[0].value).strip()
