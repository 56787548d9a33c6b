#!/usr/bin/env python3
"""B3: build and DKIM-sign one recipient's ~100 KB CJK message (RSA-2048, list headers).

Baseline (same run): the naive ``EmailMessage`` build plus ``dkimpy``
``dkim.sign`` (relaxed/relaxed, same h= list).  Ours: ``CompiledMessage.build``
with a :class:`~newsletter.delivery.dkim.DkimSigner` (shared body-hash prefix,
``cryptography`` RSA).  Both outputs are checked with ``dkim.verify`` first.
One core.  Target: ours ≥ 30× the baseline rate.  Exits 1 if missed.

    .venv/bin/python benchmarks/b3_dkim.py [--seconds 5] [--rounds 3] [--ed25519]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import dkim
from _common import (
    FROM_ADDR,
    SIGNED,
    compile_sample,
    naive_build,
    nproc,
    one_core,
    rate,
    recipient,
    sample_email,
    table,
)

from newsletter.delivery.dkim import (
    DkimSigner,
    dns_txt_record,
    generate_ed25519_key,
    generate_rsa_key,
)

TARGET = 30.0
DOMAIN = FROM_ADDR.rpartition("@")[2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ed25519", action="store_true", help="add an Ed25519 signature to ours")
    args = ap.parse_args()
    one_core()
    html, text, subject, source = sample_email()
    pem = generate_rsa_key(2048)
    ed = generate_ed25519_key() if args.ed25519 else None
    signer = DkimSigner.from_pem(DOMAIN, "bench", pem, ed25519_selector="bench-ed", ed25519_pem=ed)
    compiled = compile_sample(html, text, subject)
    compiled.signer = signer
    recips = [recipient(i) for i in range(1000)]
    include = [h.encode() for h in SIGNED]

    def baseline(i: int) -> bytes:
        msg = naive_build(html, text, subject, recips[i % 1000])
        sig = dkim.sign(
            msg, b"bench", DOMAIN.encode(), pem,
            canonicalize=(b"relaxed", b"relaxed"), include_headers=include,
        )  # fmt: skip
        return sig + msg

    def ours(i: int) -> bytes:
        return compiled.build(recips[i % 1000])[1]

    record = dns_txt_record(pem).encode()

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record

    assert dkim.verify(baseline(0), dnsfunc=dns), "baseline does not verify"
    assert dkim.verify(ours(0), dnsfunc=dns), "ours does not verify"
    # Alternate rounds (baseline, ours, baseline, ours, ...) so that noise on a
    # shared machine hits both sides; report the medians.
    bases, mines = [], []
    nb = no = 0
    for _ in range(args.rounds):
        b, n1 = rate(baseline, args.seconds)
        m, n2 = rate(ours, args.seconds)
        bases.append(b)
        mines.append(m)
        nb, no = nb + n1, no + n2
    base, mine = statistics.median(bases), statistics.median(mines)
    ratio = statistics.median(m / b for m, b in zip(mines, bases, strict=True))
    # The floor: one RSA-2048 private-key operation (OpenSSL, via cryptography).
    key = signer.keys[0]
    digest = b"\x00" * 32
    t0 = time.perf_counter()
    for _ in range(200):
        key.sign_digest(digest)
    rsa_us = (time.perf_counter() - t0) / 200 * 1e6
    algs = "rsa-sha256" + (" + ed25519-sha256" if ed else "")
    print(f"B3 assembly + DKIM ({algs}, relaxed/relaxed, h= {len(SIGNED)} fields) — "
          f"input: {source}; both verified with dkimpy")
    print(table([
        ("", "value"),
        ("---", "---"),
        ("baseline (naive + dkimpy sign, msg/s)", f"{base:,.1f}  ({1000 / base:.2f} ms/msg, n={nb})"),
        ("ours (build + DkimSigner, msg/s)", f"{mine:,.0f}  ({1e6 / mine:.0f} µs/msg, n={no})"),
        ("of which RSA-2048 sign alone", f"{rsa_us:.0f} µs/msg"),
        ("ratio (median of rounds)", f"{ratio:.1f}× (target ≥ {TARGET:.0f}×)"),
        ("nproc", f"{nproc()} (measured on 1 core)"),
        ("result", "PASS" if ratio >= TARGET else "FAIL"),
    ]))  # fmt: skip
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
