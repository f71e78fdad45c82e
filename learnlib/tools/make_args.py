"""`python -m learnlib.tools.make_args MODULE [ARG ...]`: run MODULE with the words of $MAKE_ARGS appended.

The Makefile passes `make train ARGS='...'` through the environment, unexpanded, so that what the
user typed reaches Python as typed: no `$VAR` eaten by make, no `;` or glob run by a shell. The text
is split into words like a shell would (quotes group words) and nothing else.
"""

from __future__ import annotations

import os
import runpy
import shlex
import sys

ENV_NAME = "MAKE_ARGS"


def words(text: str) -> list[str]:
    """The words of `text`, split as a shell splits them (quotes kept together), nothing expanded."""
    try:
        return shlex.split(text)
    except ValueError as err:  # an unmatched quote
        raise SystemExit(f"error: ARGS={text!r}: {err}; close the quote or escape it") from None


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m learnlib.tools.make_args MODULE [ARG ...]  (extra words from $MAKE_ARGS)")
    module, fixed = sys.argv[1], sys.argv[2:]
    sys.argv = [module, *fixed, *words(os.environ.get(ENV_NAME, ""))]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
