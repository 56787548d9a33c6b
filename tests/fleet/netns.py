"""Hosts made of Linux network namespaces, for the partition harness (issue 19).

A :class:`Fabric` is a small routed network on one machine, as root:

* a *router* namespace with IP forwarding on;
* one namespace per host, joined to the router by its own veth pair: the host
  side is ``eth0`` with ``10.19.<n>.2/24``, the router side ``10.19.<n>.1``, which
  is also the host's default route.

Because every packet between two hosts crosses the router, a partition between
any two of them is one policy-routing rule there (``ip rule … blackhole``): the
router silently drops the packets, as a broken link or a firewall would (no
reset, no ICMP), while each host still reaches all the others. This needs
neither iptables nor nftables, only ``ip``.

Nothing is created in the machine's own network namespace: the addresses are
private to the fabric, so several fabrics (and other people's tests) never
meet. Names carry a random suffix, and :meth:`Fabric.close` (also on failure)
kills every process it started, by process group, and deletes its namespaces.

The harness talks to the database and Redis over Unix sockets (files are not
namespaced), so seeding and counting go on whatever the partitions.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["Fabric", "Host", "available"]

_NET = "10.19"


def available() -> str | None:
    """Why the fabric cannot be built here (None when it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@dataclass
class Host:
    name: str  # role, e.g. "db", "w1"
    netns: str
    addr: str
    index: int
    veth: str  # the router-side end, named in the machine's namespace while being built


@dataclass
class Fabric:
    workdir: Path
    suffix: str = field(default_factory=lambda: secrets.token_hex(2))
    hosts: dict[str, Host] = field(default_factory=dict)
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)
    _rules: dict[int, list[list[str]]] = field(default_factory=dict)
    _next_pref: int = 1000
    _logs: list[IO[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.router = f"nl-rt-{self.suffix}"
        _ip("netns", "add", self.router)
        try:
            self._exec(self.router, "ip", "link", "set", "lo", "up")
            self._exec(self.router, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
        except BaseException:
            _ip("netns", "del", self.router, check=False)
            raise

    # -- building -----------------------------------------------------------------

    def add_host(self, name: str) -> Host:
        index = len(self.hosts) + 1
        ns = f"nl-{name}-{self.suffix}"
        outer, inner = f"nl{self.suffix}{name}", f"nl{self.suffix}{name}h"
        _ip("netns", "add", ns)
        host = Host(name, ns, f"{_NET}.{index}.2", index, outer)
        self.hosts[name] = host  # registered before anything can fail: close() cleans up
        _ip("link", "add", inner, "type", "veth", "peer", "name", outer)
        _ip("link", "set", inner, "netns", ns, "name", "eth0")
        _ip("link", "set", outer, "netns", self.router)
        self._exec(self.router, "ip", "addr", "add", f"{_NET}.{index}.1/24", "dev", outer)
        self._exec(self.router, "ip", "link", "set", outer, "up")
        self._exec(ns, "ip", "link", "set", "lo", "up")
        self._exec(ns, "ip", "addr", "add", f"{host.addr}/24", "dev", "eth0")
        self._exec(ns, "ip", "link", "set", "eth0", "up")
        self._exec(ns, "ip", "route", "add", "default", "via", f"{_NET}.{index}.1")
        return host

    def _exec(self, ns: str, *argv: str) -> None:
        subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True)

    # -- processes ----------------------------------------------------------------

    def start(
        self,
        host: Host,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        log: str,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[Any]:
        """Start ``argv`` inside ``host`` (in its own process group, so it can be killed
        with its children), output to ``workdir/logs/<log>-<n>.log``."""
        prefix = ["ip", "netns", "exec", host.netns]
        if user is not None:  # drop root after entering the namespace (PostgreSQL)
            prefix += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out = (logs / f"{log}-{len(self.procs)}.log").open("wb")
        self._logs.append(out)
        proc = subprocess.Popen(
            prefix + argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    @staticmethod
    def kill(proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
        """Signal the process group of ``proc`` (a host losing those processes)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)

    # -- partitions ---------------------------------------------------------------

    def cut(self, a: Host, b: Host | None = None) -> int:
        """Drop every packet between ``a`` and ``b`` (both ways), or between ``a`` and
        every other host when ``b`` is None. Returns a handle for :meth:`heal`."""
        pref = self._next_pref
        self._next_pref += 10
        rules: list[list[str]] = []
        if b is None:
            rules += [["to", a.addr], ["from", a.addr]]
        else:
            rules += [["from", a.addr, "to", b.addr], ["from", b.addr, "to", a.addr]]
        for n, sel in enumerate(rules):
            rule = [*sel, "blackhole", "pref", str(pref + n)]
            _ip("-n", self.router, "rule", "add", *rule)
        self._rules[pref] = rules
        return pref

    def heal(self, handle: int) -> None:
        for n, _sel in enumerate(self._rules.pop(handle, [])):
            _ip("-n", self.router, "rule", "del", "pref", str(handle + n), check=False)

    # -- teardown -----------------------------------------------------------------

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(proc)
            # children left behind in the group (e.g. PostgreSQL backends)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for out in self._logs:
            out.close()
        for host in self.hosts.values():
            _ip("netns", "del", host.netns, check=False)
            if _ip("link", "show", host.veth, check=False).returncode == 0:  # half-built
                _ip("link", "del", host.veth, check=False)
        _ip("netns", "del", self.router, check=False)  # takes the router-side veths along

    def __enter__(self) -> Fabric:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
