"""Settings written once: a frozen dataclass holds each setting's name, type, default, range
and help, checks its values when built, and lends its signature to the class it configures."""

import inspect
import math
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import Field, asdict, field, fields
from typing import Any, TypeVar

from makemore_pl.core.errors import SettingError

Check = Callable[[Any], str | None]  # a value -> what is wrong with it, or None
S = TypeVar("S", bound="Settings")


def setting(default: Any, help: str, check: Check | None = None, kept: bool = False) -> Any:
    """A field of a settings class: its default, its help text, the check of its range, and
    whether a resumed run keeps it (`kept`: another value would change what its numbers mean)."""
    return field(default=default, metadata={"help": help, "check": check, "kept": kept})


def is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def whole(least: int, below: int | None = None, words: str | None = None) -> Check:
    said = words or f"must be at least {least}"

    def check(value: Any) -> str | None:
        fits = is_whole(value) and value >= least and (below is None or value < below)
        return None if fits else f"{said}, got {value!r}"

    return check


def optional(check: Check) -> Check:
    """None (to be filled in later, e.g. from the data), or a value `check` accepts."""
    return lambda value: None if value is None else check(value)


def number(
    least: float = 0.0, positive: bool = False, optional: bool = False, words: str | None = None
) -> Check:
    """A finite number of at least `least` (above it with `positive`); None too if `optional`."""
    said = words or ("must be a positive number" if positive else f"must be {least:g} or more")

    def check(value: Any) -> str | None:
        if value is None and optional:
            return None
        fits = is_number(value) and math.isfinite(value) and value >= least
        return None if fits and not (positive and value == least) else f"{said}, got {value}"

    return check


def one_of(*choices: str) -> Check:
    said = ", ".join(map(repr, choices[:-1])) + f" or {choices[-1]!r}"

    def check(value: Any) -> str | None:
        fits = isinstance(value, str) and value in choices
        return None if fits else f"must be {said}, got {value!r}"

    return check


def of_type(kind: type | tuple[type, ...], words: str) -> Check:
    """A value of this Python type (`words` names it), e.g. a path's text or a flag."""
    return lambda value: None if isinstance(value, kind) else f"must be {words}, got {value!r}"


def numbers(count: int, what: str) -> Check:
    """A list of `count` finite numbers of 0 or more (`what` says what they are for)."""

    def check(value: Any) -> str | None:
        if not isinstance(value, list | tuple) or len(value) != count:
            return f"needs {count} values ({what}), got {value!r}"
        if not all(is_number(v) and 0 <= v < math.inf for v in value):
            return f"must be finite and 0 or more, got {list(value)!r}"
        return None

    return check


class Settings:
    """The base of every settings class (a frozen dataclass)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            check = f.metadata.get("check")
            problem = check(getattr(self, f.name)) if check else None
            if problem is not None:
                raise SettingError(f.name, problem)
        self.check()

    def check(self) -> None:
        """Checks between settings, once each has passed its own."""

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def kept(cls) -> set[str]:
        """The settings a resumed run keeps: the split, the data, the model's shape."""
        return {f.name for f in fields(cls) if f.metadata.get("kept")}

    @classmethod
    def from_saved(cls: type[S], saved: Mapping[str, Any]) -> S:
        """The settings a checkpoint or a config holds; UnknownSettings for names it lacks."""
        unknown = sorted(set(map(str, saved)) - set(cls.names()))
        if unknown:
            raise UnknownSettings(unknown)
        return cls(**saved)

    def saved(self) -> dict[str, Any]:
        """Plain values (tuples as lists), as a checkpoint and a config file hold them."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def hparams(self) -> dict[str, Any]:
        """The settings as columns of an HParams table: numbers as numbers, a list as a column
        per item (`strengths.0`, ...), anything else as text; the characters left out."""
        columns = {}
        for name, value in self.saved().items():
            if name == "chars":
                continue
            items = enumerate(value) if isinstance(value, list) else [(None, value)]
            for i, item in items:
                key = name if i is None else f"{name}.{i}"
                columns[key] = item if is_number(item) else str(item).lower()
        return columns


class UnknownSettings(ValueError):
    """Names a settings class does not have (a checkpoint of another model)."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(f"unknown settings: {', '.join(names)}")
        self.names = names


Option = tuple[str, Field, Any]  # (the option's name, the setting's field, its type)


def options_of(
    settings_class: type[Settings], names: Iterable[str] | None = None, rename: Mapping = {}
) -> list[Option]:
    """The settings (`names` of them, default all) as options, some under another name."""
    hints = typing.get_type_hints(settings_class)
    chosen = [f for f in fields(settings_class) if names is None or f.name in names]
    return [(rename.get(f.name, f.name), f, hints[f.name]) for f in chosen]


def describe(function: Callable, options: list[Option], first: list[str] = ()) -> None:
    """Gives `function(*first, **options)` the signature and Args docstring jsonargparse reads."""
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [inspect.Parameter(name, keyword) for name in first] + [
        inspect.Parameter(name, keyword, default=f.default, annotation=hint)
        for name, f, hint in options
    ]
    function.__signature__ = inspect.Signature(parameters)
    function.__annotations__ = {name: hint for name, _, hint in options}
    lines = [(function.__doc__ or "").rstrip(), "", "Args:"]
    for name, f, _ in options:
        lines.append(f"    {name}: " + f.metadata["help"].replace("\n", "\n        "))
    function.__doc__ = "\n".join(lines) + "\n"


def takes_settings(settings_class: type[Settings]) -> Callable[[type], type]:
    """A class decorator: `__init__(*args, **settings)` shows the signature and help of
    `settings_class` to LightningCLI. The class's `__init__` must not call `super()`: Lightning
    would read that frame's arguments by the signature shown."""

    def decorate(cls: type) -> type:
        init = cls.__init__

        def __init__(self, *args: Any, **settings: Any) -> None:
            init(self, *args, **settings)

        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        __init__.__module__ = cls.__module__
        describe(__init__, options_of(settings_class), ["self"])
        cls.__init__ = __init__
        return cls

    return decorate
