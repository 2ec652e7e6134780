"""Run every benchmark and print each result as a ratio measured in the same run.

``python -m benchmarks [--quick] [--only overhead,scale,memory,curves,server,settings,peers]``
(``make bench``). The
machine is shared and noisy, so no result is an absolute time to compare across runs; each
prints whether its goal is met. ``--profile FILE`` instead writes a pyinstrument profile of the
framework's side of the per-call overhead measure (profile before optimising).
"""

from __future__ import annotations

import argparse
import importlib
import time

SUITES = ("overhead", "scale", "memory", "curves", "server", "settings", "peers")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--only", help=f"comma-separated, from {', '.join(SUITES)}")
    parser.add_argument("--profile", metavar="FILE", help="write a profile of the k=1 overhead run to FILE, and stop")
    args = parser.parse_args()
    if args.profile:
        from benchmarks.overhead import profile

        profile(args.profile, quick=args.quick)
        print(f"profile written to {args.profile}")
        return
    chosen = args.only.split(",") if args.only else list(SUITES)
    unknown = [c for c in chosen if c not in SUITES]
    if unknown:
        parser.error(f"unknown benchmarks {unknown} (known: {', '.join(SUITES)})")
    rows = []
    for name in chosen:
        start = time.perf_counter()
        for row in importlib.import_module(f"benchmarks.{name}").run(quick=args.quick):
            rows.append(row)
            print(f"{row['benchmark']}\n    {row['result']}  [goal {row['goal']}: {row['met']}]", flush=True)
        print(f"    ({name}: {time.perf_counter() - start:.0f} s)", flush=True)
    met = sum(r["met"] == "goal met" for r in rows)
    print(f"\n{met} of {len(rows)} goals met")


if __name__ == "__main__":
    main()
