"""Targets of the benchmarks: each one printed as met/MISSED; with ``--check`` a missed
target makes the script exit non-zero (for anyone who wants a benchmark to gate a change).

Usage in a benchmark::

    targets = Targets.from_args(args)            # after parser.add_argument(...) and
    targets.at_least("speedup", ratio, 1.5)      # add_check_flag(parser)
    targets.finish()                             # exit 1 under --check if one was missed
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

__all__ = ["Targets", "add_check_flag"]


def add_check_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a target is missed"
    )


@dataclass
class Targets:
    check: bool = False
    missed: list[str] = field(default_factory=list)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Targets:
        return cls(check=bool(getattr(args, "check", False)))

    def _verdict(self, name: str, ok: bool) -> str:
        if not ok:
            self.missed.append(name)
        return "met" if ok else "MISSED"

    def at_least(self, name: str, value: float, target: float) -> str:
        """``met``/``MISSED`` for value ≥ target (recorded for :meth:`finish`)."""
        return self._verdict(name, value >= target)

    def at_most(self, name: str, value: float, target: float) -> str:
        """``met``/``MISSED`` for value ≤ target (recorded for :meth:`finish`)."""
        return self._verdict(name, value <= target)

    def finish(self) -> None:
        """Print the missed targets; exit 1 under ``--check`` when there are any."""
        if self.missed:
            print(f"targets missed: {', '.join(self.missed)}", file=sys.stderr)
            if self.check:
                sys.exit(1)
