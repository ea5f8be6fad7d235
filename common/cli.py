"""The argument parser of every command here: a mistake is one line and a non-zero exit."""
from __future__ import annotations

import argparse
import difflib
import os
import sys
from contextlib import contextmanager


class ArgumentParser(argparse.ArgumentParser):
    """argparse's, except that an error prints one line (no usage block; ``--help`` has it),
    an unknown flag names the closest known one, and flags are never abbreviated."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):
        known, unknown = self.parse_known_args(args, namespace)
        if unknown:
            flags = [s for action in self._actions for s in action.option_strings]
            unknown = [u for u in unknown if u.startswith("-")] or unknown    # not the unknown flag's value too
            self.error("; ".join(f"unknown argument {u!r}{close_match(u.split('=')[0], flags)}" for u in unknown))
        return known

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")


def close_match(word: str, choices) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing."""
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def seed_list(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (for ``--seeds`` and ``SEEDS``)."""
    try:
        seeds = [int(s) for s in text.replace(" ", ",").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are integers separated by commas, e.g. 0,1,2; got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"give one or more distinct seeds, e.g. 0,1,2; got {text!r}")
    return seeds


@contextmanager
def reader_may_leave():
    """``--list | head`` ends quietly: once the reader of standard output has gone, the rest of
    the output is dropped instead of ending in a BrokenPipeError traceback."""
    try:
        yield
        sys.stdout.flush()          # what is still buffered goes now, inside the try, not at exit
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())        # so the flush at exit fails no more
        os.close(devnull)
