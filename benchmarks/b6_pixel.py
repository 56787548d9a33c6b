#!/usr/bin/env python3
"""B6 (placeholder, being written)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys


def ensure_tools() -> None:
    """Install nginx and wrk from Debian when missing (the benchmark's own setup)."""
    if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
        if shutil.which("wrk"):
            return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "nginx", "wrk"], check=True, env=env)


if __name__ == "__main__":
    ensure_tools()
    sys.exit(0)
