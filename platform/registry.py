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
        self._aliases: dict[str, str] = {}
        self._info: dict[str, dict] = {}

    def register(self, name: str, *, aliases: tuple[str, ...] = (), **info) -> Callable:
        """Decorator registering a builder under ``name`` (and ``aliases``, older or shorter names),
        with ``info`` about it (e.g. the modality an encoder takes)."""
        def wrap(builder: Callable) -> Callable:
            if self._builders.get(name, builder) is not builder:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._builders[name] = builder
            self._info[name] = info
            for alias in aliases:
                if self._aliases.get(alias, name) != name or alias in self._builders:
                    raise ValueError(f"{self.kind} alias {alias!r} is taken")
                self._aliases[alias] = name
            return builder
        return wrap

    def names(self) -> list[str]:
        """Every registered name (aliases not included)."""
        self._load()
        return sorted(self._builders)

    def known(self, name: str) -> bool:
        self._load()
        return name in self._builders or name in self._aliases

    def canonical(self, name: str) -> str:
        """The registered name behind ``name`` (itself, or the name an alias stands for)."""
        self._load()
        name = self._aliases.get(name, name)
        if name not in self._builders:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._builders))}")
        return name

    def info(self, name: str) -> dict:
        return self._info[self.canonical(name)]

    def create(self, name: str, *args, **options):
        """Builds ``name`` with ``args`` and the options that are not None."""
        builder = self._builders[self.canonical(name)]
        return builder(*args, **{k: v for k, v in options.items() if v is not None})

    def _load(self) -> None:
        if self._load_builtin is not None:
            load, self._load_builtin = self._load_builtin, None
            load()
