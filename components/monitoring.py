"""The Prometheus config for a stack: what to scrape on each VM and the alert rules to load.

    python -m components.monitoring Pulumi.example.yaml > prometheus.yml

The targets are the stack output `metrics` (components/render.py scrape_targets), one per VM, each labelled
with the stack, the VM's role and name: the alert rules in prometheus/ha-lb-alerts.rules.yml read those labels.
Read offline from the stack file, like `python -m components.offline`.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

import yaml

from .render import Host, lab_hosts, scrape_targets
from .settings import LabSettings

RULES_FILE = pathlib.Path(__file__).resolve().parent / "prometheus" / "ha-lb-alerts.rules.yml"
HAPROXY_JOB = "ha-lb-haproxy"
NODE_JOB = "ha-lb-node"
# The alert rules' `for:` durations are chosen for this interval (see the rules file's header).
SCRAPE_INTERVAL_SECONDS = 5
# Under the interval, so a slow scrape fails before the next one is due.
SCRAPE_TIMEOUT_SECONDS = 4


def _host_of(target: str, hosts: tuple[Host, ...]) -> Host:
    address = target.rsplit(":", 1)[0]
    return next(host for host in hosts if str(host.address) == address)


def _static_configs(settings: LabSettings, targets: list[str]) -> list[dict[str, Any]]:
    """One entry per target, so each carries its own VM's labels. `role` is render.LOAD_BALANCER or
    render.WEB_SERVER: the rules count the load balancers by it."""
    hosts = lab_hosts(settings)
    configs = []
    for target in targets:
        host = _host_of(target, hosts)
        labels = {"stack": settings.stack, "role": host.role, "vm": host.name}
        configs.append({"targets": [target], "labels": labels})
    return configs


def _job(name: str, static_configs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "job_name": name,
        "scrape_interval": f"{SCRAPE_INTERVAL_SECONDS}s",
        "scrape_timeout": f"{SCRAPE_TIMEOUT_SECONDS}s",
        "metrics_path": "/metrics",
        "static_configs": static_configs,
    }


def prometheus_config(settings: LabSettings, rules_file: str) -> dict[str, Any]:
    targets = scrape_targets(settings)
    return {
        "rule_files": [rules_file],
        "scrape_configs": [
            _job(HAPROXY_JOB, _static_configs(settings, targets["haproxy"])),
            _job(NODE_JOB, _static_configs(settings, targets["node"])),
        ],
    }


def render_prometheus_config(settings: LabSettings, rules_file: str = str(RULES_FILE)) -> str:
    header = (f"# Prometheus config for ha-lb stack `{settings.stack}`, rendered by `python -m components.monitoring`.\n"
              f"# Merge rule_files and scrape_configs into your prometheus.yml, or run Prometheus on it as it is.\n")
    return header + yaml.safe_dump(prometheus_config(settings, rules_file), sort_keys=False, default_flow_style=False)


def main(argv: list[str] | None = None) -> int:
    from .offline import PLACEHOLDER_PRIVATE_KEY, PLACEHOLDER_PUBLIC_KEY, read_stack_file
    from .settings import SettingsError, load_settings

    parser = argparse.ArgumentParser(prog="python -m components.monitoring", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack_file", type=pathlib.Path, help="a Pulumi.<stack>.yaml file")
    parser.add_argument("--rules", default=str(RULES_FILE), help="path of the alert rules file as Prometheus sees it "
                        "(default: this checkout's %(default)s)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    stack, config = read_stack_file(args.stack_file)
    # Keys never reach the scrape config; placeholders spare the reader a key lookup.
    config.setdefault("sshPublicKeys", [PLACEHOLDER_PUBLIC_KEY])
    config.setdefault("sshPrivateKey", PLACEHOLDER_PRIVATE_KEY)
    try:
        settings = load_settings(config, stack=stack)
    except SettingsError as error:
        print(f"{args.stack_file}: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(render_prometheus_config(settings, args.rules))
    return 0


if __name__ == "__main__":
    sys.exit(main())
