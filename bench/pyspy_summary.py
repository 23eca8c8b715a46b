# -*- test-case-name: tests.test_bench_smoke -*-
"""Summarise py-spy collapsed stacks (``--format raw``): the top functions by total and own time.

    python bench/pyspy_summary.py PROFILE.txt [--top 25] [--match leaderboard/]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path


def summarise(path: Path, top: int, match: str) -> str:
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [re.sub(r" \((?:/[^)]*/)?(?:site-packages/)?([^)]*)\)", r" (\1)", f)
                  for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and
                  not f.startswith("thread ")]
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count
    lines = [f"{total} samples"]
    lines.append("-- own time --")
    for frame, count in own.most_common(top):
        lines.append(f"{100 * count / total:5.1f}%  {frame}")
    lines.append(f"-- total time (frames matching {match!r}) --")
    for frame, count in inclusive.most_common():
        if match in frame:
            lines.append(f"{100 * count / total:5.1f}%  {frame}")
            if len(lines) > 2 * top + 3:
                break
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="leaderboard/")
    args = parser.parse_args(argv)
    print(summarise(args.profile, args.top, args.match))
    return 0


if __name__ == "__main__":
    sys.exit(main())
