"""Model of the pulumi-random 4.21.4 provider plugin: `random:index/randomPassword:RandomPassword` only.

Run as `python -m tests.engine.plugins.random_password [engine flags] ENGINE_ADDRESS` (named so as not to
shadow the standard library's `random`). pulumi-random bridges terraform-provider-random (plugin framework;
read at the newest commit of the snapshot here, ad788e23 after v3.9.0: pulumi-random pins a May 2026
pseudo-version of it) through the PF bridge (tests/engine/plugins/bridged.py). From internal/:
- provider/resource_password.go passwordSchemaV3: keepers (RequiresReplaceIfValuesNotNull), length (required,
  AtLeast(1), AtLeastSumOf(min_upper, min_lower, min_numeric, min_special), RequiresReplace), special / upper /
  lower (default true), number (deprecated) / numeric (NumberNumericAttributePlanModifier, AtLeastOneOfTrue
  (special, upper, lower)), min_numeric / min_upper / min_lower / min_special (default 0), override_special
  (RequiresReplaceIf RequiresReplaceUnlessEmptyStringToNull), result and bcrypt_hash (Sensitive,
  UseStateForUnknown), id (UseStateForUnknown). Create: random.CreateString, generateHash, id "none".
  Update copies the plan to the state; Read and Delete do nothing.
- random/string.go CreateString / generateRandomBytes: the character sets, the minimums drawn from their
  own sets (whether or not that set is enabled), the rest from the enabled sets, then a shuffle.
- provider/resource_password.go generateHash: bcrypt (DefaultCost 10, "$2a$") of the first 72 bytes.
- planmodifiers/map/mapplanmodifiers.go, planmodifiers/bool/boolplanmodifiers.go,
  planmodifiers/string/stringplanmodifier.go, validators/boolvalidator.go; the messages of
  terraform-plugin-framework-validators helpers/validatordiag/diag.go and int64validator/at_least*.go, and
  terraform-plugin-framework path/expressions.go Expressions.String.
Randomness: Python's `secrets` (the OS CSPRNG, as Go's crypto/rand). The bcrypt hash comes from the C
library's crypt(3) (libxcrypt, "$2a$" prefix, as golang.org/x/crypto/bcrypt writes).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import secrets
import threading
from typing import Any

from .bridged import Attribute, BridgedResource, requires_replace
from .server import CallContext, ModelError, is_unknown, plugin_version, serve, unsecret

PACKAGE = "random"
VERSION = plugin_version("pulumi_random")

# random/string.go CreateString
NUM_CHARS = "0123456789"
LOWER_CHARS = "abcdefghijklmnopqrstuvwxyz"
UPPER_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SPECIAL_CHARS = "!@#$%&*()-_=+[]{}<>:?"

BCRYPT_DEFAULT_COST = 10  # golang.org/x/crypto/bcrypt DefaultCost
_BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

LENGTH_DESCRIPTION = ("The length of the string desired. The minimum value for length is 1 and, length must also be "
                      ">= (`min_upper` + `min_lower` + `min_numeric` + `min_special`).")


def _random_runes(charset: str, length: int) -> list[str]:
    """random/string.go generateRandomBytes."""
    if charset == "" and length > 0:
        raise ModelError("charSet is empty")
    if length < 0:
        # make([]rune, length) panics in the original: the provider process dies. Fail instead.
        raise ModelError(f"a negative number of characters ({length}) was requested; the original panics here")
    return [charset[secrets.randbelow(len(charset))] for _ in range(length)]


def create_string(length: int, upper: bool, min_upper: int, lower: bool, min_lower: int, numeric: bool,
                  min_numeric: int, special: bool, min_special: int, override_special: str) -> str:
    """random/string.go CreateString."""
    special_chars = override_special if override_special != "" else SPECIAL_CHARS
    chars = ""
    if upper:
        chars += UPPER_CHARS
    if lower:
        chars += LOWER_CHARS
    if numeric:
        chars += NUM_CHARS
    if special:
        chars += special_chars
    if chars == "":
        raise ModelError("the character set specified is empty")
    # A Go map literal: a later key equal to an earlier one overwrites it (as a Python dict literal does).
    min_mapping = {NUM_CHARS: min_numeric, LOWER_CHARS: min_lower, UPPER_CHARS: min_upper,
                   special_chars: min_special}
    result: list[str] = []
    for charset, count in min_mapping.items():  # the minimums come from their own sets, enabled or not
        result += _random_runes(charset, count)
    result += _random_runes(chars, length - len(result))
    # sort.Slice by random bytes: a shuffle
    for i in range(len(result) - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        result[i], result[j] = result[j], result[i]
    return "".join(result)


_crypt_lock = threading.Lock()


def _crypt():
    name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        raise ModelError(f"the random model needs the C library's crypt(3) (libcrypt) for bcrypt: {e}") from e
    fn = lib.crypt
    fn.restype = ctypes.c_char_p
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return fn


def _bcrypt_b64(data: bytes) -> str:
    """bcrypt's base64 (./A-Za-z0-9, no padding)."""
    out, bits, nbits = [], 0, 0
    for byte in data:
        bits, nbits = (bits << 8) | byte, nbits + 8
        while nbits >= 6:
            nbits -= 6
            out.append(_BCRYPT_ALPHABET[(bits >> nbits) & 0x3F])
    if nbits:
        out.append(_BCRYPT_ALPHABET[(bits << (6 - nbits)) & 0x3F])
    return "".join(out)


def bcrypt_hash(password: str) -> str:
    """resource_password.go generateHash: bcrypt.GenerateFromPassword(first 72 bytes, DefaultCost)."""
    data = password.encode("utf-8")[:72]
    if b"\0" in data:
        raise ModelError("the random model cannot bcrypt a password containing NUL bytes (crypt(3) stops there)")
    salt = f"$2a${BCRYPT_DEFAULT_COST:02d}${_bcrypt_b64(secrets.token_bytes(16))}"
    with _crypt_lock:
        result = _crypt()(data, salt.encode())
    if not result or not result.startswith(b"$2a$"):
        raise ModelError("Hash Generation Error: crypt(3) did not produce a bcrypt hash")
    return result.decode()


# -- validators (config keyed by Pulumi names)


def _known_int(config: dict, name: str) -> Any:
    return unsecret(config.get(name))


def _length_at_least_one(config: dict) -> list[tuple[str, str]]:
    """int64validator.AtLeast(1)."""
    v = _known_int(config, "length")
    if v is None or is_unknown(v) or v >= 1:
        return []
    return [("Invalid Attribute Value", f"Attribute length value must be at least 1, got: {int(v)}")]


def _length_at_least_sum(config: dict) -> list[tuple[str, str]]:
    """int64validator.AtLeastSumOf(min_upper, min_lower, min_numeric, min_special): unknowns skip it,
    nulls count as nothing (the schema defaults are not applied yet)."""
    v = _known_int(config, "length")
    if v is None or is_unknown(v):
        return []
    total = 0
    for name in ("minUpper", "minLower", "minNumeric", "minSpecial"):
        m = _known_int(config, name)
        if is_unknown(m):
            return []
        if m is not None:
            total += int(m)
    if v >= total:
        return []
    return [("Invalid Attribute Value", "Attribute length value must be at least sum of min_upper + min_lower + "
             f"min_numeric + min_special, got: {int(v)}")]


def _at_least_one_true(name: str):
    """validators/boolvalidator.go AtLeastOneOfTrue(special, upper, lower) on number / numeric."""
    def check(config: dict) -> list[tuple[str, str]]:
        v = unsecret(config.get(name))
        if v is None or is_unknown(v) or v:
            return []
        for other in ("special", "upper", "lower"):
            o = unsecret(config.get(other))
            if o is None or is_unknown(o) or o:
                return []
        return [("Invalid Attribute Combination",
                 f"At least one attribute out of [special,upper,lower,{name}] must be specified as true")]
    return check


def _keepers_replace(prior: Any, planned: Any, config: Any) -> bool:
    """planmodifiers/map/mapplanmodifiers.go RequiresReplaceIfValuesNotNull."""
    config_elems = config if isinstance(config, dict) else {}  # unknown or null: no elements
    if prior is None:
        return not all(v is None for v in config_elems.values())
    for key, value in config_elems.items():
        if key not in prior and value is None:
            continue
        if key in prior and prior[key] == value:
            continue
        return True
    return any(key not in config_elems for key in prior)


def _override_special_replace(prior: Any, planned: Any, config: Any) -> bool:
    """planmodifiers/string RequiresReplaceUnlessEmptyStringToNull."""
    if is_unknown(config):
        return False
    if config is not None or prior is None:
        return True
    return prior != ""


class RandomPassword(BridgedResource):
    token = "random:index/randomPassword:RandomPassword"
    attributes = {
        "keepers": Attribute("keepers", "map[string]string", optional=True, requires_replace=_keepers_replace),
        "length": Attribute("length", "int64", required=True, requires_replace=requires_replace,
                            validators=[_length_at_least_one, _length_at_least_sum], description=LENGTH_DESCRIPTION),
        "special": Attribute("special", "bool", optional=True, computed=True, default=True,
                             requires_replace=requires_replace),
        "upper": Attribute("upper", "bool", optional=True, computed=True, default=True, requires_replace=requires_replace),
        "lower": Attribute("lower", "bool", optional=True, computed=True, default=True, requires_replace=requires_replace),
        "number": Attribute("number", "bool", optional=True, computed=True, requires_replace=requires_replace,
                            validators=[_at_least_one_true("number")]),
        "numeric": Attribute("numeric", "bool", optional=True, computed=True, requires_replace=requires_replace,
                             validators=[_at_least_one_true("numeric")]),
        "minNumeric": Attribute("min_numeric", "int64", optional=True, computed=True, default=0.0,
                                requires_replace=requires_replace),
        "minUpper": Attribute("min_upper", "int64", optional=True, computed=True, default=0.0,
                              requires_replace=requires_replace),
        "minLower": Attribute("min_lower", "int64", optional=True, computed=True, default=0.0,
                              requires_replace=requires_replace),
        "minSpecial": Attribute("min_special", "int64", optional=True, computed=True, default=0.0,
                                requires_replace=requires_replace),
        "overrideSpecial": Attribute("override_special", "string", optional=True,
                                     requires_replace=_override_special_replace),
        "result": Attribute("result", "string", computed=True, sensitive=True, use_state_for_unknown=True),
        "bcryptHash": Attribute("bcrypt_hash", "string", computed=True, sensitive=True, use_state_for_unknown=True),
        "id": Attribute("id", "string", computed=True, use_state_for_unknown=True),
    }

    def validate_config(self, ctx: CallContext, config: dict) -> list[tuple[str, str, str]]:
        if "number" in config:  # DeprecationMessage: a warning diagnostic, logged by the bridge
            ctx.warning("number is deprecated: **NOTE**: This is deprecated, use `numeric` instead.")
        return super().validate_config(ctx, config)

    def plan_extra(self, ctx: CallContext, config: dict, planned: dict) -> None:
        """boolplanmodifiers.NumberNumericAttributePlanModifier (on both number and numeric)."""
        number, numeric = unsecret(config.get("number")), unsecret(config.get("numeric"))
        if number is not None and numeric is not None and not is_unknown(number) and not is_unknown(numeric) \
                and number != numeric:
            # provider_diagnostics.go: an error diagnostic without attribute: "<summary>: <detail>"
            raise ModelError("Number and numeric are both configured with different values: "
                             "Number is deprecated, use numeric instead")
        if number is None and numeric is None:
            planned["number"] = planned["numeric"] = True
        elif number is None:
            planned["number"] = planned["numeric"] = config["numeric"]
        elif numeric is None:
            planned["number"] = planned["numeric"] = config["number"]
        for name in ("minNumeric", "minUpper", "minLower", "minSpecial"):
            v = unsecret(planned.get(name))
            if not is_unknown(v) and v is not None and v < 0:
                # generateRandomBytes would make([]rune, negative) and panic: refuse in the plan already
                raise ModelError(f"{name} {int(v)}: negative minimums make the original provider panic")

    def apply_create(self, ctx: CallContext, planned: dict) -> dict:
        result = create_string(
            length=int(planned["length"]), upper=planned["upper"], min_upper=int(planned["minUpper"]),
            lower=planned["lower"], min_lower=int(planned["minLower"]), numeric=planned["numeric"],
            min_numeric=int(planned["minNumeric"]), special=planned["special"],
            min_special=int(planned["minSpecial"]), override_special=planned.get("overrideSpecial") or "")
        return {"result": result, "bcryptHash": bcrypt_hash(result), "id": "none"}

    def update(self, ctx: CallContext, id_: str, olds: dict, news: dict, old_inputs: dict, preview: bool) -> dict:
        """Update copies the plan to the state: result, bcryptHash and id keep their state values
        (UseStateForUnknown)."""
        planned = self.plan(ctx, news, olds)
        if not preview and any(is_unknown(v) for v in planned.values()):
            raise ModelError("internal error: unknown values in an update's plan")
        return self._outputs(planned, news)


def main() -> None:
    serve(PACKAGE, VERSION, [RandomPassword()])


if __name__ == "__main__":
    main()
