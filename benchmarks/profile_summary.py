"""Sum py-spy's collapsed stacks (var/profile-<name>-*.txt) by function: where the time went.

Run: .venv/bin/python benchmarks/profile_summary.py NAME [TOP]
Prints, for each function, the share of samples in which it is on the stack (inclusive),
our code (meetings/) and the stack's alike, and the share where it is the leaf (self).
"""

import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    name, top = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for path in sorted((ROOT / "var").glob(f"profile-{name}-*.txt")):
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            samples = int(count)
            total += samples
            frames = [
                frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0].split("/")[-1] + ")"
                for frame in stack.split(";")
            ]
            for frame in set(frames):
                inclusive[frame] += samples
            leaf[frames[-1]] += samples
    print(f"{total} samples")
    print("inclusive:")
    for frame, samples in inclusive.most_common(top):
        print(f"  {100 * samples / total:5.1f}%  {frame}")
    print("self:")
    for frame, samples in leaf.most_common(15):
        print(f"  {100 * samples / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
