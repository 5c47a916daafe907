"""web01's rendered nginx site served by real nginx (private network, PID and mount namespace), reached at
exactly the addresses and ports lb01's rendered haproxy.cfg sends traffic to, over HTTP and HTTPS."""

from __future__ import annotations

import re
import subprocess

import pytest

from components.render import PATHS, render_haproxy_cfg, render_nginx_site, stats_password_hash
from components.settings import load_settings
from tests.conftest import require_root, require_tools
from tests.keys import key_config


@pytest.fixture(scope="module")
def answers(tmp_path_factory) -> dict[str, str]:
    require_root()
    require_tools("nginx", "openssl", "curl", "unshare", "ip")
    settings = load_settings({**key_config(), "statsPassword": "correct-horse-battery"}, stack="nginx")
    web01 = next(web for web in settings.web_servers if web.name == "web01")
    site = render_nginx_site(settings, web01)
    haproxy = render_haproxy_cfg(settings, stats_password_hash(settings, "x" * 8))
    # Where HAProxy sends web01's traffic: one server line per backend (HTTP, then HTTPS passthrough).
    targets = re.findall(r"^\s+server web01 (\S+):(\d+) check(.*)$", haproxy, re.M)
    assert len(targets) == 2, targets
    directory = tmp_path_factory.mktemp("nginx")
    (directory / "conf.d").mkdir()
    (directory / "conf.d" / "ha-lb.conf").write_text(site)
    (directory / "nginx.conf").write_text(
        f"events {{}}\nhttp {{\n    access_log off;\n    include {directory}/conf.d/*.conf;\n}}\n")
    certs, private = directory / "certs", directory / "private"
    certs.mkdir()
    private.mkdir()
    address = targets[0][0]
    curls = "\n".join(
        f"echo \"{port}{' tls' if 'ssl' in rest else ''} $(curl --silent --max-time 2 --insecure "
        f"{'https' if 'ssl' in rest else 'http'}://{host}:{port}/)\""
        for host, port, rest in targets)
    script = f"""
set -eu
ip link set lo up
ip addr add {address}/32 dev lo
mount --bind {certs} {PATHS.tls_certificate.rsplit('/', 1)[0]}
mount --bind {private} {PATHS.tls_key.rsplit('/', 1)[0]}
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=web01 \
    -keyout {PATHS.tls_key} -out {PATHS.tls_certificate} 2>/dev/null
nginx -p {directory} -c {directory}/nginx.conf -e stderr -g 'daemon off; master_process off; pid {directory}/nginx.pid; error_log stderr;' &
for _ in $(seq 100); do
    curl --silent --output /dev/null --max-time 1 http://{address}:{targets[0][1]}/ && break
    sleep 0.05
done
{curls}
"""
    result = subprocess.run(["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "--propagation",
                             "private", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # "PORT[ tls] BODY" per target -> {"PORT[ tls]": BODY}
    return {m.group(1): m.group(2) for m in re.finditer(r"^(\d+(?: tls)?) (.*)$", result.stdout, re.M)}


def test_web01_answers_where_haproxy_sends_its_http_and_https_traffic(answers):
    assert len(answers) == 2, answers
    for target, body in answers.items():
        assert body.startswith("served by web01 ("), (target, body)
    assert any(target.endswith(" tls") for target in answers)
