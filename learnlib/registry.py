"""One registry style for everything built by name: models, tasks and datasets.

A module registers a factory with `@REGISTRY.register("name")`; the registry imports its
list of modules on first use, so a name is known without the caller importing its module.
A chapter adds its module to the list of the registry it fills.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Any


class Registry:
    """Named factories of one kind ("model", "task", "dataset"), filled by decorators."""

    def __init__(self, kind: str, modules: Iterable[str] = ()):
        self.kind = kind
        self.modules = tuple(modules)
        self._factories: dict[str, Callable[..., Any]] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator that registers a factory (function or class) under `name`."""

        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            known = self._factories.get(name)
            if known is not None and getattr(known, "__qualname__", None) != getattr(factory, "__qualname__", None):
                raise ValueError(f"{self.kind} name {name!r} is registered twice")
            self._factories[name] = factory
            return factory

        return decorator

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self.modules:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as err:
                # A chapter module that does not exist yet registers nothing; any other
                # missing import is a real error and is raised.
                if err.name is None or not (module == err.name or module.startswith(err.name + ".")):
                    self._loaded = False
                    raise

    def available(self) -> list[str]:
        """Sorted names of every registered factory."""
        self._load()
        return sorted(self._factories)

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered as `name`; KeyError listing the valid names otherwise."""
        self._load()
        if name not in self._factories:
            raise KeyError(f"unknown {self.kind} {name!r}; available {self.kind}s: {', '.join(self.available())}")
        return self._factories[name]

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._factories

    def options(self, name: str) -> list[str] | None:
        """Keyword options the factory `name` accepts, or None when they cannot be read off it.

        A factory taking only `**overrides` is read through its return annotation (the class it builds).
        """
        factory = self.get(name)
        params = _keyword_params(factory)
        if params is not None:
            return params
        built = _built_class(factory) if _only_var_keyword(factory) else None
        return _keyword_params(built) if built is not None else None

    def build(self, name: str, **kwargs: Any) -> Any:
        """Call the factory `name` with `kwargs`; an unknown option is a ValueError listing the valid ones."""
        factory = self.get(name)
        strict = _keyword_params(factory)
        if strict is not None and set(kwargs) - set(strict):
            self._unknown(name, sorted(set(kwargs) - set(strict)), strict)
        try:
            return factory(**kwargs)
        except TypeError as err:
            unknown = [key for key in kwargs if f"unexpected keyword argument '{key}'" in str(err)]
            if not unknown:
                raise
            self._unknown(name, unknown, self.options(name))

    def _unknown(self, name: str, unknown: list[str], accepted: list[str] | None) -> None:
        valid = f"; its options are {accepted}" if accepted is not None else ""
        raise ValueError(f"{self.kind} {name!r} has no option(s) {unknown}{valid}") from None


def _keyword_params(target: Callable[..., Any]) -> list[str] | None:
    """Names a callable (or a class's __init__) takes by keyword; None when it also takes **kwargs."""
    function = target.__init__ if inspect.isclass(target) else target
    params = [p for p in inspect.signature(function).parameters.values() if p.name != "self"]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _only_var_keyword(factory: Callable[..., Any]) -> bool:
    """True for a factory of the form `f(**overrides)`."""
    params = list(inspect.signature(factory).parameters.values())
    return len(params) == 1 and params[0].kind is inspect.Parameter.VAR_KEYWORD


def _built_class(factory: Callable[..., Any]) -> type | None:
    """The class a factory function is annotated to return, if any."""
    if inspect.isclass(factory):
        return None
    try:
        built = typing.get_type_hints(factory).get("return")
    except Exception:  # unresolvable annotations: nothing to read
        return None
    return built if inspect.isclass(built) else None
