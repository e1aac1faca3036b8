"""`--config FILE` is untrusted input: its size, expanded, is checked before anything loads it."""

from __future__ import annotations

from pathlib import Path

import yaml

from makemore_pl.core.errors import CommandError

# a config of this package holds a few dozen values; nested YAML aliases can make a few hundred
# bytes expand to billions of nodes (a "billion laughs" file), which no loader survives
MAX_NODES = 100_000


def check_config_files(args: list[str]) -> None:
    """Every `--config`/`-c` file among `args` must parse and expand to at most MAX_NODES."""
    for i, arg in enumerate(args):
        path = args[i + 1] if arg in ("--config", "-c") and i + 1 < len(args) else None
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        if path is not None and Path(path).is_file():
            check_config_file(path)


def check_config_file(path: str) -> None:
    try:
        nodes = expanded_nodes(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        reason = " ".join(str(err).split())
        raise CommandError(f"--config {path}: not a readable YAML file ({reason})") from None
    if nodes > MAX_NODES:
        raise CommandError(
            f"--config {path}: its YAML aliases expand to {nodes:,} values, more than the "
            f"{MAX_NODES:,} a config can hold; write the values out instead of aliasing them"
        )


def expanded_nodes(text: str) -> int:
    """How many nodes the document has once every alias is replaced by what it names, counted
    from the parser's events (nothing is expanded; stops counting past the limit)."""
    anchors: dict[str, int] = {}
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, size so far) of open collections
    total = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            size = anchors.get(event.anchor, 1)
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor:
                anchors[event.anchor] = 1
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            open_nodes.append((event.anchor, 1))
            continue
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, size = open_nodes.pop()
            if anchor:
                anchors[anchor] = size
        else:
            continue
        if open_nodes:
            anchor, so_far = open_nodes[-1]
            open_nodes[-1] = (anchor, so_far + size)
        else:
            total += size
        if max([total, *(s for _, s in open_nodes)]) > MAX_NODES:
            return max([total, *(s for _, s in open_nodes)])
    return total
