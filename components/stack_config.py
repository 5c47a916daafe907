"""Reads the `ha-lb:` stack configuration from the Pulumi runtime and validates it once."""

from __future__ import annotations

import pulumi
from pulumi.runtime import config as runtime_config

from .settings import PROJECT, LabSettings, SettingsError, load_user_settings


def raw_stack_config() -> dict[str, object]:
    """Every `ha-lb:*` key, including unknown ones, so a typo is reported instead of ignored."""
    prefix = f"{PROJECT}:"
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return {key[len(prefix):]: runtime_config.get_config(key) for key in sorted(keys) if key.startswith(prefix)}


def load_stack_settings() -> LabSettings:
    try:
        return load_user_settings(raw_stack_config(), stack=pulumi.get_stack(),
                                  provider_uri=runtime_config.get_config("libvirt:uri"))
    except SettingsError as error:
        # RunError: Pulumi prints the message alone, without a Python traceback.
        raise pulumi.RunError(str(error)) from None
