"""The README's promises as literal numbers: every bound in the tests comes from here, never from the code
under test, and tests/test_promises.py checks that the README states exactly these numbers."""

from __future__ import annotations

# "Failover: what to expect": seconds from the fault to the first good answer through the VIP,
# per VRRP profile (classic: advert 1 s, check 2 s; fast: advert 0.1 s, check 1 s), with the default
# priorities 254/253 (the backup's skew time is 3/256 of an advert).
FAILOVER_SECONDS = {
    "keepalived stops on the master": {"classic": 0.2, "fast": 0.2},
    "link or node lost": {"classic": 3.1, "fast": 0.5},
    "haproxy dies, event-driven track": {"classic": 0.2, "fast": 0.2},
    "haproxy dies, polled check": {"classic": 4.5, "fast": 2.5},
    # The reference's weight mode: the check lowers the priority and the peer preempts.
    "haproxy dies, weighted check": {"classic": 8.5, "fast": 2.9},
}
# The same fault with the reference's priorities, which the weight mode needs (100/99, the backup at 101 while its
# check passes): its skew time is (256 - 101) / 256 of an advert, 0.61 s with the classic 1 s advert.
WEIGHT_MODE_LINK_OR_NODE_LOST_SECONDS = {"classic": 3.7}
# A master that resigns (keepalived stopped, HAProxy found dead): from its dropping the VIP to the peer's
# taking it, seen as netlink events in the namespace harness (seconds).
RESIGN_TO_TAKEOVER_SECONDS = 0.1
# The master is repaired (preempt, the default hold-down): the VIP is back on it within (seconds), and it
# moves at most twice in all (away, and back once) when HAProxy is killed and systemd restarts it.
FAILBACK_SECONDS = {"classic": 17, "fast": 8.2}
VIP_MOVES_AFTER_A_RESTARTED_HAPROXY = 2
# A pair with the fast profile under the test's client (a request every 0.1 s): no VIP movement, and neither load
# balancer in FAULT, in this many seconds on the VMs.
FAST_PROFILE_SOAK_SECONDS = 180
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
# "VM end-to-end test": a lost node (a VM powered off or rebooted) with the classic timing, as the host's
# client sees it on the emulated VMs (0.25 s timeouts, a request sent on time whether or not the earlier ones
# have answered): seconds.
REBUILD_LONGEST_OUTAGE = 4.5
# The master resigns (HAProxy killed, event-driven track; keepalived stopped), as that client sees it on the
# emulated VMs (seconds).
VM_RESIGNATION_OUTAGE = 1.5
# A failback on the emulated VMs, as that client sees it (seconds): the requests in flight across the handover
# break, and a host that missed the returning master's first gratuitous ARPs follows the next, a second later.
VM_FAILBACK_OUTAGE = 1.5
# The same for the fast profile's lost link on the emulated VMs (seconds).
VM_FAST_LINK_LOSS_OUTAGE = 1.0
