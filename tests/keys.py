"""A throwaway SSH key pair for the tests, made once per run (never committed)."""

from __future__ import annotations

import functools
import pathlib
import subprocess
import tempfile


@functools.lru_cache(maxsize=1)
def test_key_pair() -> tuple[str, str]:
    """(private key text, public key line)."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="ha-lb-test-key-"))
    key = directory / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ha-lb-test", "-f", str(key)], check=True)
    return key.read_text(), (directory / "id_ed25519.pub").read_text().strip()


def key_config() -> dict[str, object]:
    private, public = test_key_pair()
    return {"sshPrivateKey": private, "sshPublicKeys": [public]}
