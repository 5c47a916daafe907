"""A model of pulumi-tls 5.6.2's `tls:index/privateKey:PrivateKey` (terraform-provider-tls v4
internal/provider/resource_private_key.go, common_key.go), for the ED25519 keys the program generates.
Other algorithms fail the check: the model does not implement them.

    python -m tests.engine.models.tls ENGINE_ADDRESS
"""

from __future__ import annotations

import base64
import hashlib
import json
import pathlib

import pulumi_tls

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pulumi.runtime.proto import provider_pb2

from .server import UNKNOWN, Model, Secret, from_struct, reveal, serve, to_struct

PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
INPUTS = {"algorithm", "rsaBits", "ecdsaCurve"}
# resource_private_key.go Schema: rsa_bits defaults to 2048, ecdsa_curve to P224; every input RequiresReplace.
DEFAULTS = {"rsaBits": 2048, "ecdsaCurve": "P224"}
ALGORITHMS = ("RSA", "ECDSA", "ED25519")
OUTPUTS = ("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh", "publicKeyPem", "publicKeyOpenssh",
           "publicKeyFingerprintMd5", "publicKeyFingerprintSha256")
SENSITIVE = ("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh")  # secrets in state and outputs


class TlsModel(Model):
    name = "tls"
    version = json.loads((pathlib.Path(pulumi_tls.__file__).parent / "pulumi-plugin.json").read_text())["version"]

    def Check(self, request, context):  # noqa: N802
        news = from_struct(request.news)
        failures = []
        unknown = sorted(set(news) - INPUTS)
        if unknown:
            failures.append(f"unknown inputs {unknown}")
        algorithm = reveal(news.get("algorithm"))
        if algorithm is None:
            failures.append("Missing required argument: algorithm")
        elif algorithm != UNKNOWN and algorithm not in ALGORITHMS:
            # stringvalidator.OneOf(supportedAlgorithmsStr()...)
            failures.append(f"algorithm: value must be one of: {list(ALGORITHMS)}, got: {algorithm!r}")
        elif algorithm in ("RSA", "ECDSA"):
            failures.append(f"algorithm {algorithm}: not modelled by the test double of pulumi-tls (ED25519 is)")
        if failures:
            return provider_pb2.CheckResponse(failures=[provider_pb2.CheckFailure(property="", reason=f)
                                                        for f in failures])
        return provider_pb2.CheckResponse(inputs=to_struct({**DEFAULTS, **news}))

    def Diff(self, request, context):  # noqa: N802
        olds, news = from_struct(request.olds), from_struct(request.news)
        changed = sorted(k for k in INPUTS if reveal(olds.get(k)) != reveal(news.get(k)))
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if changed else provider_pb2.DiffResponse.DIFF_NONE,
            replaces=changed, diffs=changed, deleteBeforeReplace=False)

    def Create(self, request, context):  # noqa: N802
        inputs = from_struct(request.properties)
        if request.preview:
            return provider_pb2.CreateResponse(properties=to_struct({**inputs, **{k: UNKNOWN for k in OUTPUTS}}))
        outputs = {**inputs, **ed25519_key_outputs()}
        for key in SENSITIVE:
            outputs[key] = Secret(outputs[key])
        # The framework provider's id: the SHA-1 of the public key PEM (hashForState).
        resource_id = hashlib.sha1(outputs["publicKeyPem"].encode()).hexdigest()
        return provider_pb2.CreateResponse(id=resource_id, properties=to_struct(outputs))

    def Read(self, request, context):  # noqa: N802
        return provider_pb2.ReadResponse(id=request.id, properties=request.properties, inputs=request.inputs)

    def Update(self, request, context):  # noqa: N802 (every input replaces: nothing to update in place)
        return provider_pb2.UpdateResponse(properties=request.olds)

    def Delete(self, request, context):  # noqa: N802
        from google.protobuf import empty_pb2
        return empty_pb2.Empty()


def ed25519_key_outputs() -> dict[str, str]:
    """The key in every format resource_private_key.go Create and common_key.go setPublicKeyAttributes write."""
    key = ed25519.Ed25519PrivateKey.generate()
    none = serialization.NoEncryption()
    pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, none).decode()
    openssh = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, none).decode()
    public = key.public_key()
    public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    authorized = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    blob = base64.b64decode(authorized.split()[1])
    md5 = hashlib.md5(blob).hexdigest()
    return {
        # ED25519 is PKCS#8 in both PEM outputs.
        "privateKeyPem": pkcs8,
        "privateKeyPemPkcs8": pkcs8,
        "privateKeyOpenssh": openssh,
        "publicKeyPem": public_pem.decode(),
        # ssh.MarshalAuthorizedKey: "TYPE BASE64\n".
        "publicKeyOpenssh": authorized + "\n",
        # ssh.FingerprintLegacyMD5 and ssh.FingerprintSHA256.
        "publicKeyFingerprintMd5": ":".join(md5[i:i + 2] for i in range(0, 32, 2)),
        "publicKeyFingerprintSha256": "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("="),
    }


if __name__ == "__main__":
    serve(TlsModel())
