"""How long a learner waits before the first check: `import learnlib.check` against `import learnlib.nn`.

Each import runs in a fresh interpreter (so nothing is cached in the process), the two alternate
round by round so that load from other processes hits both alike, and the best of the rounds is kept.
Also records whether the import loaded Hydra. Prints a table and appends a dated section to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from machine import append_results, cpu_model
from results import Figure

PROBE = """
import sys, time
start = time.perf_counter()
{statement}
seconds = time.perf_counter() - start
import json
print(json.dumps({{"seconds": seconds, "hydra": "hydra" in sys.modules,
                   "learnlib_modules": sum(name.startswith("learnlib") for name in sys.modules)}}))
"""
STATEMENTS = ("import learnlib.check", "from learnlib.check import patchify", "import learnlib.nn")


def probe(statement: str) -> dict:
    """One fresh interpreter running `statement`: seconds, whether Hydra came along, learnlib modules loaded."""
    run = subprocess.run([sys.executable, "-c", PROBE.format(statement=statement)], capture_output=True, text=True,
                         check=True)
    return json.loads(run.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    for statement in STATEMENTS:  # warm the file-system cache
        probe(statement)
    best = {statement: None for statement in STATEMENTS}
    for _ in range(args.rounds):
        for statement in STATEMENTS:
            result = probe(statement)
            if best[statement] is None or result["seconds"] < best[statement]["seconds"]:
                best[statement] = result
    seconds = {statement: result["seconds"] for statement, result in best.items()}
    lines = ["| statement | best of %d fresh interpreters, s | Hydra loaded | learnlib modules loaded |" % args.rounds,
             "|---|---:|---|---:|"]
    lines += [f"| `{m}` | {r['seconds']:.3f} | {'yes' if r['hydra'] else 'no'} | {r['learnlib_modules']} |"
              for m, r in best.items()]
    lines += ["", f"Ratio first grader / `import learnlib.nn`: "
              f"{seconds[STATEMENTS[1]] / seconds[STATEMENTS[2]]:.2f}; `import learnlib.check` alone loads no grader "
              f"(PEP 562). Machine: {cpu_model()}, Python {sys.version.split()[0]}."]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        figure = Figure("bench_import", "seconds to a learner's first grader, fresh interpreter",
                        f"{seconds[STATEMENTS[1]]:.2f} s (`from learnlib.check import patchify`, no Hydra)",
                        f"{seconds[STATEMENTS[2]]:.2f} s (`import learnlib.nn`)",
                        f"{seconds[STATEMENTS[1]] / seconds[STATEMENTS[2]]:.2f}", cpu_model())
        append_results("Import time of the graders (`learnlib.check`) against `learnlib.nn`", body, [figure])


if __name__ == "__main__":
    main()
