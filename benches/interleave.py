#!/usr/bin/env python3
"""Before/after comparison that a drifting host cannot bias: runs the given commands in
turn, round after round (A B C A B C ...), so each sees the same drift, where hyperfine
runs each command's runs as one block. Prints each command's median, mean and 10th
percentile wall time, its mean CPU time (user + system) and the minor page faults of
one run. Output goes to /dev/null.

Usage: python3 benches/interleave.py RUNS 'CMD ARGS...' 'CMD ARGS...' ...
Read-only: it runs only the commands given.
"""
import os
import shlex
import statistics
import sys
import time

WARMUP = 5


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    runs = int(sys.argv[1])
    cmds = [shlex.split(c) for c in sys.argv[2:]]
    devnull = os.open(os.devnull, os.O_WRONLY)
    out = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
    results = [[] for _ in cmds]
    for i in range(WARMUP + runs):
        for k, cmd in enumerate(cmds):
            start = time.perf_counter()
            pid = os.posix_spawnp(cmd[0], cmd, os.environ, file_actions=out)
            _, status, usage = os.wait4(pid, 0)
            wall = time.perf_counter() - start
            if os.waitstatus_to_exitcode(status) not in (0, 2):
                sys.exit(f"{' '.join(cmd)}: exit status {os.waitstatus_to_exitcode(status)}")
            if i >= WARMUP:
                results[k].append((wall * 1e3, (usage.ru_utime + usage.ru_stime) * 1e3, usage.ru_minflt))
    for cmd, res in zip(cmds, results):
        wall = sorted(r[0] for r in res)
        print(
            f"median {statistics.median(wall):7.3f} ms  mean {statistics.mean(wall):7.3f}"
            f"  p10 {wall[len(wall) // 10]:7.3f}  cpu {statistics.mean(r[1] for r in res):7.3f} ms"
            f"  faults {res[-1][2]:4}  {' '.join(cmd)[:90]}"
        )


main()
