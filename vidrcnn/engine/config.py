"""Typed run configuration: dataclass defaults, YAML files that hold only what differs, ``key=value`` overrides.

Resolution order (later wins): the dataclass defaults (:mod:`vidrcnn.engine.config_schema`), the ``_base_`` files a YAML file names (recursively,
paths relative to that file), the file itself, then command-line overrides such as ``train.lr=3e-4`` or
``model.kwargs.dropout=0.2``. Every key is type-checked; an unknown key is a :class:`~vidrcnn.errors.ConfigError` that
names the file and the nearest valid key. ``docs/guide/config.md`` is generated from the dataclasses of
:mod:`vidrcnn.engine.config_schema` by
:func:`render_markdown` (``python -m vidrcnn.engine.config docs/guide/config.md``); a test keeps it in sync.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import math
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from vidrcnn.engine.config_schema import (
    FREEFORM,
    SECTIONS,
    Config,
    DataConfig,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)
from vidrcnn.errors import ConfigError

# The schema's classes are part of this module's interface (``from vidrcnn.engine.config import Config``).
__all__ = ["BASE_KEY", "Config", "DataConfig", "EvalConfig", "ModelConfig", "OptimConfig", "TrainConfig", "config_dir",
           "config_from_dict", "config_to_dict", "load_config", "render_markdown", "resolve_config", "save_config",
           "valid_keys"]

BASE_KEY = "_base_"


# -- keys and types --------------------------------------------------------------------------------------------------
def _fields(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}


def _leaf_fields() -> dict[str, tuple[dataclasses.Field, Any]]:
    """Every settable dotted key -> (field, type)."""
    out = {}
    for name, (f, tp) in _fields(Config).items():
        if name in SECTIONS:
            out.update({f"{name}.{k}": v for k, v in _fields(SECTIONS[name]).items()})
        else:
            out[name] = (f, tp)
    return out


def valid_keys() -> list[str]:
    """Every dotted key a config file or override may set."""
    return list(_leaf_fields())


def _unknown(key: str, where: str | os.PathLike | None) -> ConfigError:
    keys = valid_keys() + list(SECTIONS)
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.4)
    if not close:  # a right leaf under a wrong section ("training.lr") still has a nearest key
        close = difflib.get_close_matches(key.rsplit(".", 1)[-1], [k.rsplit(".", 1)[-1] for k in keys], n=1)
        close = [k for k in keys if k.rsplit(".", 1)[-1] == close[0]][:1] if close else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(where, f"unknown key {key!r}{hint}")


def _type_name(tp: Any) -> str:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    return "None" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, where: str | os.PathLike | None, meta: dict) -> Any:
    """``value`` as type ``tp`` or a ConfigError; numbers widen to float, nothing else converts silently."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        kinds = [a for a in args if a is not type(None)]
        # str | list (data.list_file): a list where a list is given, else the first type
        tp = list if list in kinds and isinstance(value, (list, tuple)) else kinds[0]

    def bad(extra: str = "") -> ConfigError:
        return ConfigError(where, f"{key}: expected {_type_name(tp)}, got {value!r}{extra}")

    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
    elif tp is float:
        if isinstance(value, str):  # PyYAML reads "1e-3" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise bad() from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        value = float(value)
        if not math.isfinite(value):
            raise bad(" (a finite number)")
    elif tp is str:
        if not isinstance(value, str):
            raise bad()
    elif tp is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise bad(" (a mapping with string keys)")
        value = dict(value)
    elif tp is list:
        if not isinstance(value, (list, tuple)):
            raise bad()
        value = list(value)
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(where, f"{key}: {value!r} is not one of {', '.join(map(repr, choices))}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for bound, fails, word in (("minimum", value < (meta.get("minimum") or 0), ">="),
                                   ("maximum", value > (meta.get("maximum") or 0), "<="),
                                   ("above", value <= (meta.get("above") or 0), ">"),
                                   ("below", value >= (meta.get("below") or 0), "<")):
            if meta.get(bound) is not None and fails:
                raise ConfigError(where, f"{key}: must be {word} {meta[bound]}, got {value!r}")
    return value


# -- loading ---------------------------------------------------------------------------------------------------------
def config_dir() -> Path:
    """The folder of the configs shipped with vidrcnn: the repository's ``configs/``, installed as the package data
    ``vidrcnn.configs`` (so a wheel install finds them too)."""
    spec = importlib.util.find_spec("vidrcnn.configs")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(None, "the configs shipped with vidrcnn are not installed (package vidrcnn.configs)")
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_config(path: str | os.PathLike) -> Path:
    """``path`` when it exists or names a folder; else the shipped config of that name (``synthetic_rcn_gru_s`` or
    ``synthetic_rcn_gru_s.yaml``, :func:`config_dir`) when there is one; else ``path`` (which then fails to read)."""
    given = Path(path)
    if given.exists() or given.parent != Path("."):
        return given
    shipped = config_dir() / (given.name if given.suffix in (".yaml", ".yml") else f"{given.name}.yaml")
    return shipped if shipped.is_file() else given


def _read_yaml(path: Path, chain: tuple[Path, ...] = ()) -> list[tuple[Path, dict]]:
    """The layers of ``path``: its ``_base_`` files' layers first (recursively), then its own mapping."""
    if path.resolve() in chain:
        raise ConfigError(path, f"{BASE_KEY} include cycle: {' -> '.join(map(str, (*chain, path)))}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "no such config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, f"not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r})") from None
    except OSError as exc:
        raise ConfigError(path, f"cannot read config file ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"invalid YAML ({' '.join(str(exc).split())})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(path, f"a config file holds a mapping of keys, not a {type(data).__name__}")
    bases = data.pop(BASE_KEY, None)
    bases = [] if bases is None else [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(path, f"{BASE_KEY} must be a file name or a list of file names")
    layers: list[tuple[Path, dict]] = []
    for base in bases:
        layers += _read_yaml(path.parent / base, (*chain, path.resolve()))
    return [*layers, (path, data)]


def _flatten(data: dict, where: Path) -> dict[str, Any]:
    """A file's nested mapping as dotted keys, checked against the known keys (model.kwargs stays one value)."""
    leaves = _leaf_fields()
    flat: dict[str, Any] = {}
    for name, value in data.items():
        if not isinstance(name, str):
            raise ConfigError(where, f"keys are names, got {name!r}")
        if name in SECTIONS:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(where, f"{name}: expected a mapping of {name}.* keys, got {value!r}")
            for sub, sub_value in value.items():
                key = f"{name}.{sub}"
                if key not in leaves:
                    raise _unknown(key, where)
                flat[key] = sub_value
        elif name in leaves:
            flat[name] = value
        else:
            raise _unknown(name, where)
    return flat


def _parse_override(text: str, where: str | os.PathLike | None) -> tuple[str, Any]:
    """``key=value`` -> (key, value parsed as YAML; strings stay strings)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(where, f"override {text!r} is not key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def load_config(
    path: str | os.PathLike | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    base: dict[str, Any] | None = None,
) -> Config:
    """The run's configuration: defaults, then the YAML file ``path`` (with its ``_base_`` chain), then ``overrides``.
    ``path`` may also name a config shipped with vidrcnn (:func:`resolve_config`).

    ``base``: a nested dict applied before the file, e.g. a checkpoint's ``config`` that test-time overrides refine.

    ``overrides`` are ``dotted.key=value`` strings; values are read as YAML scalars (``null`` is None, ``true`` a
    bool, ``[1, 2]`` a list) and type-checked against the field. ``model.kwargs.NAME=value`` sets one builder option.
    Errors are :class:`ConfigError` naming the file (the config file for overrides too, or None without one).
    """
    leaves = _leaf_fields()
    values: dict[str, Any] = {}
    layers = [(path, base)] if base is not None else []
    if path is not None:
        layers += _read_yaml(resolve_config(path))
    for where, data in layers:
        if not isinstance(data, dict):
            raise ConfigError(where, f"a config is a mapping of keys, not a {type(data).__name__}")
        for key, value in _flatten(dict(data), where).items():
            f, tp = leaves[key]
            value = _coerce(value, tp, key, where, dict(f.metadata))
            if key in FREEFORM and isinstance(values.get(key), dict):
                value = {**values[key], **value}  # a derived file adds builder options, it does not drop them
            values[key] = value
    for text in overrides:
        where_cli = f"{text} (command line)"  # the override at fault, not the config file
        key, value = _parse_override(text, where_cli)
        parent = key.rsplit(".", 1)[0]
        if key not in leaves and parent in FREEFORM:  # model.kwargs.dropout=0.2
            base = dict(values.get(parent, {}))
            base[key.rsplit(".", 1)[1]] = value
            key, value = parent, base
        if key not in leaves:
            raise _unknown(key, where_cli)
        f, tp = leaves[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and tp is str:
            value = text.partition("=")[2].strip()  # model.name=123 is the string "123"
        values[key] = _coerce(value, tp, key, where_cli, dict(f.metadata))
    cfg = config_from_dict(_nest(values), where=path)
    _check(cfg, path)
    return cfg


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        section, _, leaf = key.rpartition(".")
        (out.setdefault(section, {}) if section else out)[leaf] = value
    return out


def config_from_dict(data: dict[str, Any], *, where: str | os.PathLike | None = None) -> Config:
    """A :class:`Config` from a nested dict (e.g. ``checkpoint["config"]``); missing keys keep their defaults."""
    flat = _flatten(dict(data), where)
    leaves = _leaf_fields()
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    top: dict[str, Any] = {}
    for key, value in flat.items():
        f, tp = leaves[key]
        value = _coerce(value, tp, key, where, dict(f.metadata))
        section, _, leaf = key.rpartition(".")
        (sections[section] if section else top)[leaf] = value
    return Config(**{name: cls(**sections[name]) for name, cls in SECTIONS.items()}, **top)


def _check(cfg: Config, where: str | os.PathLike | None) -> None:
    """Constraints between fields."""
    if cfg.data.resize is not None and cfg.data.resize < cfg.data.size:
        raise ConfigError(where, f"data.resize ({cfg.data.resize}) must be >= data.size ({cfg.data.size})")
    if cfg.data.list_file is not None and cfg.data.split_dir is not None:
        raise ConfigError(where, "set data.split_dir or data.list_file, not both")
    pair = cfg.data.list_file
    if isinstance(pair, list) and (len(pair) != 2 or not all(isinstance(p, str) and p for p in pair)):
        raise ConfigError(where, f"data.list_file: one list, or a [train, test] pair of two lists, got {pair!r}")
    if len(cfg.optim.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in cfg.optim.betas):
        raise ConfigError(where, f"optim.betas: expected two numbers in [0, 1), got {cfg.optim.betas!r}")
    if cfg.train.min_lr > cfg.train.lr:
        raise ConfigError(where, f"train.min_lr ({cfg.train.min_lr}) is above train.lr ({cfg.train.lr})")


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The config as a plain nested dict (what checkpoints and ``config.yaml`` hold)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML; :func:`load_config` reads it back to the same :class:`Config`."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")


# -- reference documentation -----------------------------------------------------------------------------------------
def _yaml_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def render_markdown() -> str:
    """The config reference (docs/guide/config.md): every key with its type, default and help, from the dataclasses."""
    lines = [
        "# Config reference",
        "",
        "<!-- Generated from vidrcnn/engine/config.py by `python -m vidrcnn.engine.config docs/guide/config.md` -->",
        "",
        "A run's configuration is resolved in this order, later wins: the defaults below; the files named by a",
        f"config file's `{BASE_KEY}` key (a file name or a list, relative to that file); the config file itself;",
        "`key=value` overrides on the command line, e.g.",
        "`python tools/train.py --config configs/synthetic_rcn_gru_s.yaml train.lr=3e-4`.",
        "Values are type-checked; an unknown key is an error naming the nearest valid key. Overrides are read as YAML",
        "scalars (`null`, `true`, `[1, 2]`); `model.kwargs.NAME=value` sets one builder option.",
        "The resolved config is written to `OUT/config.yaml` and stored in every checkpoint.",
        "",
    ]
    top_level = []
    for name, (f, tp) in _fields(Config).items():
        if name not in SECTIONS:
            top_level.append((name, f, tp))
            continue
        cls = SECTIONS[name]
        lines += [f"## `{name}`", "", (cls.__doc__ or "").strip(), "", "| key | type | default | description |",
                  "|---|---|---|---|"]
        for leaf, (lf, ltp) in _fields(cls).items():
            lines.append(_row(f"{name}.{leaf}", lf, ltp))
        lines.append("")
    lines += ["## Top level", "", "| key | type | default | description |", "|---|---|---|---|"]
    lines += [_row(name, f, tp) for name, f, tp in top_level]
    return "\n".join(lines) + "\n"


def _row(key: str, f: dataclasses.Field, tp: Any) -> str:
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    help_text = f.metadata.get("help", "")
    if f.metadata.get("choices"):
        help_text += " One of: " + ", ".join(f"`{c}`" for c in f.metadata["choices"]) + "."
    for bound, word in (("minimum", "Minimum"), ("maximum", "Maximum"), ("above", "Above"), ("below", "Below")):
        if f.metadata.get(bound) is not None:
            help_text += f" {word} {f.metadata[bound]}."
    help_text = help_text.replace("|", "\\|")  # a pipe would end the table cell
    return f"| `{key}` | {_type_name(tp)} | `{_yaml_value(default)}` | {help_text} |"


if __name__ == "__main__":  # python -m vidrcnn.engine.config [docs/guide/config.md]
    text = render_markdown()
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
