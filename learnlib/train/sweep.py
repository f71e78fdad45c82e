"""Sweep overrides (`a=1,2`, `range(...)`, `choice(...)`, `glob(...)`) expanded into a job list.

Parsing is Hydra's override grammar; the jobs are the cartesian product of the sweeps in the
order given (the last sweep varies fastest), as Hydra's basic sweeper orders them.
"""

from __future__ import annotations

import itertools
import re
import shlex
from dataclasses import dataclass

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException

from learnlib.errors import ConfigError

MULTIRUN_FLAGS = ("-m", "--multirun")
SWEEP_DIR_KEYS = ("sweep_dir", "hydra.sweep.dir")  # the sweep folder: a command-line key, not a config key
MAX_DIRNAME = 120  # characters of the swept overrides in a job's folder name (the index keeps it unique)


@dataclass(frozen=True)
class Job:
    """One run of a sweep: its position, every override it is composed with, and its swept values."""

    index: int
    overrides: tuple[str, ...]
    swept: tuple[str, ...]

    @property
    def dirname(self) -> str:
        """`<index>_<swept overrides>`, safe as a folder name (e.g. `0_trainer.lr=0.001,seed=0`)."""
        summary = ",".join(self.swept)[:MAX_DIRNAME]
        return f"{self.index}_{re.sub(r'[^A-Za-z0-9._=,+-]', '_', summary)}" if summary else str(self.index)


def parse(overrides: list[str]) -> list[Override]:
    """Overrides parsed with Hydra's grammar; ConfigError naming the one that does not parse."""
    loader = GlobalHydra.instance().config_loader() if GlobalHydra.instance().is_initialized() else None
    parser = OverridesParser.create(config_loader=loader)
    parsed = []
    for text in overrides:
        try:
            parsed += parser.parse_overrides([text])
        except HydraException as err:
            raise ConfigError(f"cannot parse override {text!r}: {str(err).splitlines()[0]}; {_quoting_hint(text)}"
                              ) from None
    return parsed


def _quoting_hint(text: str) -> str:
    key, _, value = text.partition("=")
    quoted = shlex.quote(f'{key}="{value}"' if '"' not in value else f"{key}='{value}'")
    return (f"a value with spaces, quotes or non-ASCII letters needs Hydra's quotes inside the shell's: {quoted}")


def sweeps_in(overrides: list[str]) -> list[str]:
    """The overrides that sweep several values (empty when they do not all parse: compose reports that)."""
    try:
        return [o.input_line for o in parse(overrides) if o.is_sweep_override()]
    except ConfigError:
        return []


def take(overrides: list[str], keys: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """(the value given to one of `keys`, or None; the other overrides). ConfigError if that key is swept."""
    value, rest = None, []
    for text, override in zip(overrides, parse(overrides)):
        if override.get_key_element() not in keys:
            rest.append(text)
        elif override.is_sweep_override():
            raise ConfigError(f"{text}: {override.get_key_element()} names the sweep's folder and cannot be swept")
        else:
            value = str(override.value())
    return value, rest


def expand(overrides: list[str]) -> list[Job]:
    """The jobs of a sweep (call it inside `initialize_config_module` for `glob(...)` over config groups)."""
    choices = []
    for override in parse(overrides):
        if not override.is_sweep_override():
            choices.append([(override.input_line, False)])
            continue
        if not override.is_discrete_sweep():
            raise ConfigError(f"{override.input_line}: only lists (a,b), choice(...), range(...) and glob(...) "
                              "can be swept, not intervals")
        key = override.get_key_element()
        values = [(f"{key}={value}", True) for value in override.sweep_string_iterator()]
        if not values:
            raise ConfigError(f"{override.input_line} sweeps no values")
        choices.append(values)
    jobs = []
    for index, combination in enumerate(itertools.product(*choices)):
        jobs.append(Job(index=index, overrides=tuple(text for text, _ in combination),
                        swept=tuple(text for text, swept in combination if swept)))
    return jobs
