"""benchmarks/RESULTS.md: the current figure of every benchmark in a table at the top, the dated log below.

A benchmark script calls `record(title, body, figures)`: the body becomes a new dated section at the
end of the log, and each `Figure` replaces the table row with the same `key` (or is added), with
today's date, in one write. The table sits between two HTML comments so that it can be found again.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN = "<!-- current figures: one row per benchmark, updated by benchmarks/results.py -->"
END = "<!-- end of current figures -->"
HEADER = ("| benchmark | what | ours | peer | ratio | date | machine |\n"
          "|---|---|---|---|---|---|---|")


@dataclass(frozen=True)
class Figure:
    """One row of the current-figures table; `key` names the benchmark (the script and the measured thing)."""

    key: str
    what: str
    ours: str
    peer: str = ""
    ratio: str = ""
    machine: str = ""

    def row(self, date: str) -> str:
        cells = (self.key, self.what, self.ours, self.peer, self.ratio, date, self.machine)
        return "| " + " | ".join(c.replace("|", "/").replace("\n", " ") for c in cells) + " |"


def _rows(text: str) -> dict[str, str]:
    """The table's rows by key, in their order."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"{RESULTS.name} has no current-figures table (expected the lines {BEGIN!r} ... {END!r})")
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = {}
    for line in block.strip().splitlines()[2:]:  # after the header and its rule
        if line.startswith("| "):
            rows[line[2:].split(" | ", 1)[0]] = line
    return rows


def update_table(text: str, figures: list[Figure] | tuple[Figure, ...], date: str) -> str:
    """`text` with each figure's row replaced (same key) or appended, dated `date`."""
    rows = _rows(text)
    for figure in figures:
        rows[figure.key] = figure.row(date)
    table = "\n".join([BEGIN, HEADER, *rows.values(), END])
    head, rest = text.split(BEGIN, 1)
    return head + table + rest.split(END, 1)[1]


def append_section(text: str, title: str, body: str, date: str) -> str:
    """`text` with a section "## title (date)" holding `body` at the end of the log."""
    return f"{text.rstrip()}\n\n## {title} ({date})\n\n{body.rstrip()}\n"


def record(title: str, body: str, figures: list[Figure] | tuple[Figure, ...] = (), path: Path = RESULTS) -> None:
    """Append a dated section to the log and update the current figures, in one write of `path`."""
    date = datetime.date.today().isoformat()
    text = path.read_text()
    text = update_table(text, figures, date) if figures else text
    path.write_text(append_section(text, title, body, date))
    print(f"appended to {path}" + (f"; current figures updated: {', '.join(f.key for f in figures)}" if figures else ""))
