"""Model of the pulumi-tls 5.6.2 provider plugin: `tls:index/privateKey:PrivateKey` only.

Run as `python -m tests.engine.plugins.tls [engine flags] ENGINE_ADDRESS`. pulumi-tls bridges
terraform-provider-tls (the plugin-framework provider, internal/provider/; read at the newest commit of the
snapshot here, d72d90e1 after v4.2.1: pulumi-tls pins a May 2026 pseudo-version of it) through the PF bridge
(tests/engine/plugins/bridged.py). From internal/provider/:
- resource_private_key.go privateKeyResourceSchemaV1: algorithm (required, RequiresReplace, OneOf RSA ECDSA
  ED25519), rsa_bits (default 2048, RequiresReplace), ecdsa_curve (default P224, RequiresReplace, OneOf P224
  P256 P384 P521); computed private_key_pem / private_key_openssh / private_key_pem_pkcs8 (Sensitive),
  public_key_pem, public_key_openssh, public_key_fingerprint_md5, public_key_fingerprint_sha256, id.
- resource_private_key.go Create: the PEM blocks (RSA: PKCS#1 "RSA PRIVATE KEY", ECDSA: SEC 1 "EC PRIVATE
  KEY", ED25519: PKCS#8 "PRIVATE KEY"), prvKeyToPKCS8PEMBlock, ssh.MarshalPrivateKey(key, "") unless
  prvKeySupportsOpenSSHMarshalling says no (ECDSA P-224: empty string). Update, Read, Delete are no-ops.
- common_key.go keyGenerators (rsa.GenerateKey, ecdsa.GenerateKey, ed25519.GenerateKey) and
  setPublicKeyAttributes: id = hashForState(DER of the public key) (common.go: SHA-1 hex of the
  TrimSpace'd bytes), public_key_pem (PKIX "PUBLIC KEY"), public_key_openssh = ssh.MarshalAuthorizedKey
  ("<type> <base64>\\n", with the trailing newline), ssh.FingerprintLegacyMD5 (hex pairs joined by ":"),
  ssh.FingerprintSHA256 ("SHA256:" + unpadded base64); all three empty for P-224.
The key material comes from `openssl genpkey` (OpenSSL's CSPRNG); the DER, PEM (64 columns, as Go's
encoding/pem) and OpenSSH encodings are built here the way Go's crypto/x509 and x/crypto/ssh build them.
Provider configuration (`tls:proxy`) is not supported: it fails.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import subprocess

from .bridged import Attribute, BridgedResource, requires_replace
from .server import CallContext, ModelError, Unsupported, plugin_version, serve

PACKAGE = "tls"
VERSION = plugin_version("pulumi_tls")

ALGORITHMS = ("RSA", "ECDSA", "ED25519")  # types.go supportedAlgorithms
CURVES = ("P224", "P256", "P384", "P521")  # types.go supportedECDSACurves


# ----------------------------------------------------------------------------------------------------------
# DER (the subset crypto/x509 uses for these keys)


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(body)) + body


def der_int(n: int) -> bytes:
    body = n.to_bytes((n.bit_length() + 8) // 8 or 1, "big", signed=False)  # leading 0 when the top bit is set
    return _tlv(0x02, body)


def der_oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body.extend(reversed(chunk))
    return _tlv(0x06, bytes(body))


def der_seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def der_octets(b: bytes) -> bytes:
    return _tlv(0x04, b)


def der_bits(b: bytes) -> bytes:
    return _tlv(0x03, b"\x00" + b)


DER_NULL = b"\x05\x00"


def der_parse(data: bytes) -> list[tuple[int, bytes]]:
    """The TLVs of one level."""
    out, i = [], 0
    while i < len(data):
        tag, n = data[i], data[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(data[i:i + k], "big")
            i += k
        out.append((tag, data[i:i + n]))
        i += n
    return out


OID_RSA = "1.2.840.113549.1.1.1"
OID_EC = "1.2.840.10045.2.1"
OID_ED25519 = "1.3.101.112"
# curve name -> (OID, openssl name, byte length, OpenSSH curve identifier)
CURVE_INFO = {"P224": ("1.3.132.0.33", "P-224", 28, None),
              "P256": ("1.2.840.10045.3.1.7", "P-256", 32, "nistp256"),
              "P384": ("1.3.132.0.34", "P-384", 48, "nistp384"),
              "P521": ("1.3.132.0.35", "P-521", 66, "nistp521")}


def pem(block_type: str, der: bytes) -> str:
    """encoding/pem EncodeToMemory: 64-column base64 lines, trailing newline."""
    b64 = base64.b64encode(der).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return f"-----BEGIN {block_type}-----\n" + "".join(line + "\n" for line in lines) + f"-----END {block_type}-----\n"


# ----------------------------------------------------------------------------------------------------------
# SSH wire encodings (x/crypto/ssh)


def ssh_string(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def ssh_mpint(n: int) -> bytes:
    if n == 0:
        return ssh_string(b"")
    return ssh_string(n.to_bytes((n.bit_length() + 8) // 8, "big"))


def _go_trim_space(b: bytes) -> bytes:
    """strings.TrimSpace on arbitrary bytes: ASCII space and the UTF-8 encodings of unicode.IsSpace."""
    spaces = [b"\xc2\x85", b"\xc2\xa0", b"\xe1\x9a\x80", b"\xe2\x80\xa8", b"\xe2\x80\xa9", b"\xe2\x80\xaf",
              b"\xe2\x81\x9f", b"\xe3\x80\x80"] + [b"\xe2\x80" + bytes([c]) for c in range(0x80, 0x8B)]
    while True:
        if b[:1] in (b"\t", b"\n", b"\v", b"\f", b"\r", b" ") and b:
            b = b[1:]
            continue
        hit = next((s for s in spaces if b.startswith(s)), None)
        if hit:
            b = b[len(hit):]
            continue
        break
    while True:
        if b and b[-1:] in (b"\t", b"\n", b"\v", b"\f", b"\r", b" "):
            b = b[:-1]
            continue
        hit = next((s for s in spaces if b.endswith(s)), None)
        if hit:
            b = b[:-len(hit)]
            continue
        return b


# ----------------------------------------------------------------------------------------------------------
# Key generation


def _openssl(args: list[str], stdin: bytes = b"") -> bytes:
    try:
        result = subprocess.run(["openssl", *args], input=stdin, capture_output=True, timeout=600)
    except FileNotFoundError as e:
        raise ModelError("the tls model needs the openssl command") from e
    if result.returncode != 0:
        raise ModelError(f"openssl {args[0]} failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def _genpkey(args: list[str]) -> bytes:
    """`openssl genpkey` PEM output (PKCS#8 "PRIVATE KEY" for every algorithm; its DER output is the
    algorithm's traditional form for some) as DER."""
    text = _openssl(["genpkey", *args]).decode("ascii")
    begin, end = "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----"
    if begin not in text or end not in text:
        raise ModelError("openssl genpkey did not write a PKCS#8 private key")
    return base64.b64decode("".join(text.split(begin, 1)[1].split(end, 1)[0].split()))


def _pkcs8_inner(pkcs8: bytes) -> tuple[str, bytes, bytes]:
    """(algorithm OID, algorithm parameters TLV bytes, the PrivateKey octets) of a PrivateKeyInfo."""
    (tag, body), = der_parse(pkcs8)
    items = der_parse(body)
    algo = der_parse(items[1][1])
    oid_body = algo[0][1]
    oid = _oid_to_str(oid_body)
    params = bytes([algo[1][0]]) + _der_len(len(algo[1][1])) + algo[1][1] if len(algo) > 1 else b""
    return oid, params, items[2][1]


def _oid_to_str(body: bytes) -> str:
    parts = [body[0] // 40, body[0] % 40]
    n = 0
    for c in body[1:]:
        n = (n << 7) | (c & 0x7F)
        if not c & 0x80:
            parts.append(n)
            n = 0
    return ".".join(map(str, parts))


def _ints(seq_body: bytes) -> list[int]:
    return [int.from_bytes(v, "big", signed=True) for t, v in der_parse(seq_body) if t == 0x02]


def generate(algorithm: str, rsa_bits: int, curve: str) -> dict[str, str]:
    """resource_private_key.go Create + common_key.go setPublicKeyAttributes."""
    openssh_ok = True
    if algorithm == "RSA":
        if rsa_bits < 1024:
            # crypto/rsa GenerateKey (Go 1.24+, the toolchain pulumi-tls builds with): checkKeySize
            raise ModelError("Unable to generate Key from configuration: crypto/rsa: "
                             f"{rsa_bits}-bit keys are insecure (see https://go.dev/pkg/crypto/rsa#hdr-Minimum_key_size)")
        if rsa_bits % 8 or rsa_bits > 16384:
            raise Unsupported(f"rsaBits {rsa_bits}: the tls model generates RSA keys of a multiple of 8 bits up "
                              "to 16384 only")
        pkcs8 = _genpkey(["-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{rsa_bits}"])
        oid, _, inner = _pkcs8_inner(pkcs8)
        (_, body), = der_parse(inner)
        version, n, e, d, p, q, dp, dq, qinv = _ints(body)[:9]
        pkcs1 = der_seq(*(der_int(x) for x in (0, n, e, d, p, q, dp, dq, qinv)))  # x509.MarshalPKCS1PrivateKey
        private_pem = pem("RSA PRIVATE KEY", pkcs1)
        pkcs8_der = der_seq(der_int(0), der_seq(der_oid(OID_RSA), DER_NULL), der_octets(pkcs1))
        spki = der_seq(der_seq(der_oid(OID_RSA), DER_NULL), der_bits(der_seq(der_int(n), der_int(e))))
        key_type = b"ssh-rsa"
        public_blob = ssh_string(key_type) + ssh_mpint(e) + ssh_mpint(n)
        private_fields = (ssh_mpint(n) + ssh_mpint(e) + ssh_mpint(d) + ssh_mpint(qinv) + ssh_mpint(p)
                          + ssh_mpint(q))
    elif algorithm == "ECDSA":
        if curve not in CURVE_INFO:
            raise ModelError(f"Unable to generate Key from configuration: invalid ECDSA curve; supported values "
                             f"are: [{' '.join(CURVES)}]")
        curve_oid, openssl_name, size, ssh_curve = CURVE_INFO[curve]
        pkcs8 = _genpkey(["-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{openssl_name}",
                          "-pkeyopt", "ec_param_enc:named_curve"])
        _, _, inner = _pkcs8_inner(pkcs8)
        (_, body), = der_parse(inner)
        fields = der_parse(body)
        d_bytes = next(v for t, v in fields if t == 0x04)
        point = None
        for t, v in fields:
            if t == 0xA1:
                (_, bits), = der_parse(v)
                point = bits[1:]
        if point is None:
            spki_raw = _openssl(["pkey", "-inform", "DER", "-pubout", "-outform", "DER"], pkcs8)
            (_, sb), = der_parse(spki_raw)
            point = der_parse(sb)[1][1][1:]
        d = int.from_bytes(d_bytes, "big")
        d_padded = d.to_bytes(size, "big")
        # x509.MarshalECPrivateKey (with the curve OID) and MarshalPKCS8PrivateKey (without it inside)
        sec1 = der_seq(der_int(1), der_octets(d_padded), _tlv(0xA0, der_oid(curve_oid)), _tlv(0xA1, der_bits(point)))
        private_pem = pem("EC PRIVATE KEY", sec1)
        inner_pkcs8 = der_seq(der_int(1), der_octets(d_padded), _tlv(0xA1, der_bits(point)))
        pkcs8_der = der_seq(der_int(0), der_seq(der_oid(OID_EC), der_oid(curve_oid)), der_octets(inner_pkcs8))
        spki = der_seq(der_seq(der_oid(OID_EC), der_oid(curve_oid)), der_bits(point))
        if ssh_curve is None:
            openssh_ok = False  # prvKeySupportsOpenSSHMarshalling: P-224 is not supported by x/crypto/ssh
            key_type = b""
            public_blob = private_fields = b""
        else:
            key_type = f"ecdsa-sha2-{ssh_curve}".encode()
            public_blob = ssh_string(key_type) + ssh_string(ssh_curve.encode()) + ssh_string(point)
            private_fields = ssh_string(ssh_curve.encode()) + ssh_string(point) + ssh_mpint(d)
    elif algorithm == "ED25519":
        pkcs8 = _genpkey(["-algorithm", "ED25519"])
        _, _, inner = _pkcs8_inner(pkcs8)
        (_, seed), = der_parse(inner)
        spki_raw = _openssl(["pkey", "-inform", "DER", "-pubout", "-outform", "DER"], pkcs8)
        (_, sb), = der_parse(spki_raw)
        public = der_parse(sb)[1][1][1:]
        if len(seed) != 32 or len(public) != 32:
            raise ModelError("openssl produced an unexpected Ed25519 key")
        pkcs8_der = der_seq(der_int(0), der_seq(der_oid(OID_ED25519)), der_octets(der_octets(seed)))
        private_pem = pem("PRIVATE KEY", pkcs8_der)  # resource_private_key.go: ED25519 -> PKCS#8 block
        spki = der_seq(der_seq(der_oid(OID_ED25519)), der_bits(public))
        key_type = b"ssh-ed25519"
        public_blob = ssh_string(key_type) + ssh_string(public)
        private_fields = ssh_string(public) + ssh_string(seed + public)  # x/crypto/ssh: Priv is seed||public
    else:
        raise ModelError(f'Invalid Key Algorithm: Key Algorithm "{algorithm}" is not supported')

    out = {"privateKeyPem": private_pem, "privateKeyPemPkcs8": pem("PRIVATE KEY", pkcs8_der),
           "publicKeyPem": pem("PUBLIC KEY", spki), "id": hashlib.sha1(_go_trim_space(spki)).hexdigest(),
           "privateKeyOpenssh": "", "publicKeyOpenssh": "", "publicKeyFingerprintMd5": "",
           "publicKeyFingerprintSha256": ""}
    if openssh_ok:
        out["privateKeyOpenssh"] = pem("OPENSSH PRIVATE KEY", _openssh_private(key_type, public_blob, private_fields))
        out["publicKeyOpenssh"] = f"{key_type.decode()} {base64.b64encode(public_blob).decode()}\n"
        md5 = hashlib.md5(public_blob).hexdigest()
        out["publicKeyFingerprintMd5"] = ":".join(md5[i:i + 2] for i in range(0, len(md5), 2))
        out["publicKeyFingerprintSha256"] = "SHA256:" + base64.b64encode(hashlib.sha256(public_blob).digest()).decode().rstrip("=")
    return out


def _openssh_private(key_type: bytes, public_blob: bytes, private_fields: bytes) -> bytes:
    """x/crypto/ssh MarshalPrivateKey(key, ""): openssh-key-v1, cipher and kdf "none", one key, random
    check ints, empty comment, padding 1, 2, 3... to a multiple of 8."""
    check = secrets.token_bytes(4)
    block = check + check + ssh_string(key_type) + private_fields + ssh_string(b"")
    block += bytes(range(1, 1 + (-len(block)) % 8))
    return (b"openssh-key-v1\x00" + ssh_string(b"none") + ssh_string(b"none") + ssh_string(b"")
            + (1).to_bytes(4, "big") + ssh_string(public_blob) + ssh_string(block))


# ----------------------------------------------------------------------------------------------------------
# The resource


def _one_of(name: str, values: tuple[str, ...]):
    """stringvalidator.OneOf: "Invalid Attribute Value Match", "Attribute <path> value must be one of:
    [\"A\" \"B\"], got: \"X\"" (validatordiag.InvalidAttributeValueMatchDiagnostic)."""
    from .server import is_unknown, unsecret

    def check(config: dict) -> list[tuple[str, str]]:
        v = unsecret(config.get(name))
        if v is None or is_unknown(v) or v in values:
            return []
        quoted = " ".join(f'"{x}"' for x in values)
        return [("Invalid Attribute Value Match",
                 f'Attribute {_tf(name)} value must be one of: [{quoted}], got: "{v}"')]
    return check


def _tf(name: str) -> str:
    return {"ecdsaCurve": "ecdsa_curve", "rsaBits": "rsa_bits"}.get(name, name)


class PrivateKey(BridgedResource):
    token = "tls:index/privateKey:PrivateKey"
    attributes = {
        "algorithm": Attribute("algorithm", "string", required=True, requires_replace=requires_replace,
                               validators=[_one_of("algorithm", ALGORITHMS)],
                               description="Name of the algorithm to use when generating the private key. "
                                           "Currently-supported values are: `RSA`, `ECDSA`, `ED25519`. "),
        "rsaBits": Attribute("rsa_bits", "int64", optional=True, computed=True, default=2048.0,
                             requires_replace=requires_replace),
        "ecdsaCurve": Attribute("ecdsa_curve", "string", optional=True, computed=True, default="P224",
                                requires_replace=requires_replace, validators=[_one_of("ecdsaCurve", CURVES)]),
        "privateKeyPem": Attribute("private_key_pem", "string", computed=True, sensitive=True),
        "privateKeyOpenssh": Attribute("private_key_openssh", "string", computed=True, sensitive=True),
        "privateKeyPemPkcs8": Attribute("private_key_pem_pkcs8", "string", computed=True, sensitive=True),
        "publicKeyPem": Attribute("public_key_pem", "string", computed=True),
        "publicKeyOpenssh": Attribute("public_key_openssh", "string", computed=True),
        "publicKeyFingerprintMd5": Attribute("public_key_fingerprint_md5", "string", computed=True),
        "publicKeyFingerprintSha256": Attribute("public_key_fingerprint_sha256", "string", computed=True),
        "id": Attribute("id", "string", computed=True),
    }

    def apply_create(self, ctx: CallContext, planned: dict) -> dict:
        return generate(planned["algorithm"], int(planned["rsaBits"]), planned["ecdsaCurve"])

    def update(self, ctx: CallContext, id_: str, olds: dict, news: dict, old_inputs: dict, preview: bool) -> dict:
        # Every input RequiresReplace: the engine never updates a PrivateKey. Refuse rather than guess.
        raise ModelError("the tls model never updates a PrivateKey in place (every input forces a replacement)")


def main() -> None:
    serve(PACKAGE, VERSION, [PrivateKey()])


if __name__ == "__main__":
    main()
