"""Name → builder registries, one per kind of component (encoders, tasks, objectives, ...)."""

from __future__ import annotations

from collections.abc import Callable


class Registry:
    """Builders registered by name; ``create`` drops options left as None so presets keep their value.

    Args:
        kind: what the registry holds, for error messages ("encoder", "task", ...).
        load_builtin: imports the modules whose decorators register the built-in builders.
    """

    def __init__(self, kind: str, load_builtin: Callable[[], None] | None = None) -> None:
        self.kind, self._load_builtin, self._builders = kind, load_builtin, {}

    def register(self, name: str) -> Callable:
        """Decorator registering a builder under ``name``."""
        def wrap(builder: Callable) -> Callable:
            if self._builders.get(name, builder) is not builder:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._builders[name] = builder
            return builder
        return wrap

    def names(self) -> list[str]:
        self._load()
        return sorted(self._builders)

    def create(self, name: str, *args, **options):
        """Builds ``name`` with ``args`` and the options that are not None."""
        self._load()
        try:
            builder = self._builders[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._builders))}") from None
        return builder(*args, **{k: v for k, v in options.items() if v is not None})

    def _load(self) -> None:
        if self._load_builtin is not None:
            load, self._load_builtin = self._load_builtin, None
            load()
