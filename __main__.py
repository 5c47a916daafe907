"""ha-lb: a highly available HAProxy + keepalived lab on libvirt. See README.md."""

import pulumi

from components.lab import Lab
from components.stack_config import load_stack_settings

settings = load_stack_settings()  # every problem reported before any resource is registered
lab = Lab("lab", settings)
for name, value in lab.outputs.items():
    pulumi.export(name, value)
