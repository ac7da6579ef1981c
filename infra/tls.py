"""A CA and a server certificate it signs, made with the openssl command (standard library
only: `make secrets` runs it before `make install`). For a self-hosted object store: pgBackRest
verifies the store's certificate against the CA (repo2-storage-ca-file), as it would a
provider's against the system's CAs. The CA's key is deleted once the certificate is signed:
nobody can mint another certificate with it."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path


class TlsError(RuntimeError):
    pass


def make_certificate(
    ca_file: Path, cert_file: Path, key_file: Path, names: Sequence[str], days: int = 3650
) -> None:
    """A new CA in ca_file and a certificate for names (host names or IP addresses) in
    cert_file with its key in key_file (mode 0600)."""
    work = cert_file.parent
    work.mkdir(parents=True, exist_ok=True)
    ca_key, csr, extensions = work / ".ca.key", work / ".server.csr", work / ".san.ext"
    # pgBackRest 2.45 matches the endpoint against DNS names only: an IP address as one too.
    alternatives = [f"DNS:{name}" for name in names]
    alternatives += [f"IP:{name}" for name in names if name.replace(".", "").isdigit()]
    extensions.write_text(f"subjectAltName={','.join(alternatives)}\n")
    new_key = ["-newkey", "rsa:2048", "-nodes"]
    try:
        _openssl("req", "-x509", *new_key, "-days", str(days), "-keyout", ca_key,
                 "-out", ca_file, "-subj", "/CN=botstack object store CA")  # fmt: skip
        _openssl("req", *new_key, "-keyout", key_file, "-out", csr,
                 "-subj", f"/CN={names[0]}")  # fmt: skip
        _openssl("x509", "-req", "-in", csr, "-CA", ca_file, "-CAkey", ca_key,
                 "-CAcreateserial", "-days", str(days), "-extfile", extensions,
                 "-out", cert_file)  # fmt: skip
    finally:
        for scratch in (ca_key, csr, extensions, ca_file.with_suffix(".srl")):
            scratch.unlink(missing_ok=True)
    key_file.chmod(0o600)


def _openssl(*args: str | Path) -> None:
    try:
        result = subprocess.run(
            ["openssl", *map(str, args)], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise TlsError("the openssl command is missing: apt-get install openssl") from None
    if result.returncode != 0:
        raise TlsError(f"openssl {args[0]} failed: {result.stderr.strip()}")
