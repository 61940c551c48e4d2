"""Drops the page-cache pages of each file named (posix_fadvise DONTNEED on that file
only; pages another process maps stay). Peak RSS counts a binary's pages mapped from
the cache, and how many a fault maps depends on how the file came into it: a file just
copied can sit in larger folios than one read back from disk (5.4 against 4.7 MiB for
the same static tune). The benches call this before taking RSS, so every figure is of
a binary read back from disk.

Usage: python3 benches/drop-cached-pages.py FILE...
"""
import os
import sys

for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
