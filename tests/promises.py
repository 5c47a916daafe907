"""The README's promises as literal numbers: every bound in the tests comes from here, never from the code
under test, and tests/test_promises.py checks that the README states exactly these numbers."""

from __future__ import annotations

# "Failover: what to expect": seconds from the fault to the first good answer through the VIP,
# per VRRP profile (classic: advert 1 s, check 2 s; fast: advert 0.1 s, check 1 s).
FAILOVER_SECONDS = {
    "keepalived stops on the master": {"classic": 4.5, "fast": 0.9},
    "link or node lost": {"classic": 4.5, "fast": 0.9},
    "haproxy dies, event-driven track": {"classic": 4.5, "fast": 0.9},
    "haproxy dies, polled check": {"classic": 8.5, "fast": 2.9},
}
# A web server dies, even mid-request: no failed request, and a request caught by the death waits at
# most HAProxy's one-second turn-around (on top of its own time at the server).
WEB_SERVER_DEATH_FAILED_REQUESTS = 0
WEB_SERVER_DEATH_EXTRA_WAIT = 1.0
# The master is repaired: with preempt, one handover back costing at most this many failed requests;
# without preempt nothing moves and no request fails.
FAILBACK_FAILED_REQUESTS = 2
NO_PREEMPT_FAILED_REQUESTS = 0
# A preemptive handover: both load balancers hold the VIP for at most this long (seconds).
HANDOVER_OVERLAP = 0.05
# On the VMs, where the host sees each load balancer's address events over SSH (stamped on arrival), the
# same handover is bounded by this (seconds).
DOUBLE_HOLD_BY_ARRIVAL_STAMPS = 0.1
# Every web server down: the first request (it meets the dead servers) gets HTTP 503 within the first
# figure, every later one (health checks marked them down) within the second.
ALL_DOWN_FIRST_503_SECONDS = 3.0
ALL_DOWN_503_SECONDS = 0.5
# "VM end-to-end test": replacing the load balancer that holds the VIP is a node loss (classic timing).
REBUILD_LONGEST_OUTAGE = FAILOVER_SECONDS["link or node lost"]["classic"]
