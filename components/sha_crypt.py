"""SHA-512 crypt ("$6$"), the scheme HAProxy's userlist checks through the system's crypt(3).

Pure Python because the `crypt` module is deprecated (removed in Python 3.13). Algorithm:
https://www.akkadia.org/drepper/SHA-crypt.txt (default 5000 rounds).
"""

from __future__ import annotations

import hashlib

_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ROUNDS = 5000
# Byte triples of the final digest, in the order the specification encodes them.
_ORDER = [
    ((k, k + 21, k + 42), (k + 21, k + 42, k), (k + 42, k, k + 21))[k % 3] for k in range(21)
]


def _repeat(digest: bytes, length: int) -> bytes:
    return (digest * (length // 64 + 1))[:length]


def sha512_crypt(password: str, salt: str) -> str:
    if not salt or len(salt) > 16 or any(c not in _ALPHABET for c in salt):
        raise ValueError("salt must be 1-16 characters from [./0-9A-Za-z]")
    pw, sb = password.encode(), salt.encode()

    alternate = hashlib.sha512(pw + sb + pw).digest()
    a = hashlib.sha512(pw + sb + _repeat(alternate, len(pw)))
    n = len(pw)
    while n:
        a.update(alternate if n & 1 else pw)
        n >>= 1
    digest_a = a.digest()

    p_bytes = _repeat(hashlib.sha512(pw * len(pw)).digest(), len(pw))
    s_bytes = _repeat(hashlib.sha512(sb * (16 + digest_a[0])).digest(), len(sb))

    c = digest_a
    for i in range(_ROUNDS):
        h = hashlib.sha512()
        h.update(p_bytes if i & 1 else c)
        if i % 3:
            h.update(s_bytes)
        if i % 7:
            h.update(p_bytes)
        h.update(c if i & 1 else p_bytes)
        c = h.digest()

    encoded = []
    for x, y, z in _ORDER:
        encoded.append(_b64_from_24bit(c[x], c[y], c[z], 4))
    encoded.append(_b64_from_24bit(0, 0, c[63], 2))
    return f"$6${salt}${''.join(encoded)}"


def _b64_from_24bit(b2: int, b1: int, b0: int, count: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(count):
        out.append(_ALPHABET[w & 0x3F])
        w >>= 6
    return "".join(out)


def stable_salt(*parts: str) -> str:
    """A salt derived from non-secret facts (lab and user name), so rendering stays deterministic."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return "".join(_ALPHABET[b % 64] for b in digest[:16])
