"""Reads the `ha-lb:` stack configuration from the Pulumi runtime and validates it once."""

from __future__ import annotations

import os

import pulumi
from pulumi.runtime import config as runtime_config

from .settings import (
    DEFAULT_LIBVIRT_URI,
    PROJECT,
    LabSettings,
    SettingsError,
    default_ssh_private_key,
    default_ssh_public_keys,
    load_settings,
)


def raw_stack_config() -> dict[str, object]:
    """Every `ha-lb:*` key, including unknown ones, so a typo is reported instead of ignored."""
    prefix = f"{PROJECT}:"
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return {key[len(prefix):]: runtime_config.get_config(key) for key in sorted(keys) if key.startswith(prefix)}


def default_libvirt_uri() -> str:
    """`libvirt:uri` (the provider's own key), then LIBVIRT_DEFAULT_URI (its only fallback), then ours."""
    return (runtime_config.get_config("libvirt:uri") or os.environ.get("LIBVIRT_DEFAULT_URI")
            or DEFAULT_LIBVIRT_URI)


def load_stack_settings() -> LabSettings:
    home = os.path.expanduser("~")
    try:
        return load_settings(
            raw_stack_config(),
            stack=pulumi.get_stack(),
            default_ssh_keys=default_ssh_public_keys(home),
            default_private_key=default_ssh_private_key(home),
            default_libvirt_uri=default_libvirt_uri(),
        )
    except SettingsError as error:
        # RunError: Pulumi prints the message alone, without a Python traceback.
        raise pulumi.RunError(str(error)) from None
