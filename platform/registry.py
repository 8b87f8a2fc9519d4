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
        self._families: dict[str, tuple[Callable, dict]] = {}

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

    def register_family(self, prefix: str, **info) -> Callable:
        """Decorator registering a builder for every name ``<prefix><model>`` (e.g. ``timm/`` + any
        timm model); it is called as ``builder(model, *args, **options)``."""
        def wrap(builder: Callable) -> Callable:
            if prefix in self._families:
                raise ValueError(f"{self.kind} family {prefix!r} is registered twice")
            self._families[prefix] = (builder, info)
            return builder
        return wrap

    def _family(self, name: str) -> str | None:
        return next((p for p in self._families if name.startswith(p) and len(name) > len(p)), None)

    def names(self) -> list[str]:
        """Every registered name (aliases not included)."""
        self._load()
        return sorted(self._builders)

    def known(self, name: str) -> bool:
        self._load()
        return name in self._builders or name in self._aliases or self._family(name) is not None

    def canonical(self, name: str) -> str:
        """The registered name behind ``name`` (itself, or the name an alias stands for)."""
        self._load()
        name = self._aliases.get(name, name)
        if name not in self._builders and self._family(name) is None:
            families = "".join(f", {p}<name>" for p in sorted(self._families))
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._builders))}{families}")
        return name

    def info(self, name: str) -> dict:
        name = self.canonical(name)
        return self._info[name] if name in self._builders else self._families[self._family(name)][1]

    def create(self, name: str, *args, **options):
        """Builds ``name`` with ``args`` and the options that are not None."""
        name = self.canonical(name)
        options = {k: v for k, v in options.items() if v is not None}
        if name in self._builders:
            return self._builders[name](*args, **options)
        prefix = self._family(name)
        return self._families[prefix][0](name[len(prefix):], *args, **options)

    def _load(self) -> None:
        if self._load_builtin is not None:
            load, self._load_builtin = self._load_builtin, None
            load()
