"""A small model registry in torchvision's style: a dict of builders, an error on duplicate names."""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable
from typing import TypeVar

from torch import nn

from vidrcnn.errors import ConfigError

BuilderT = TypeVar("BuilderT", bound=Callable[..., nn.Module])

BUILTIN_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str | None = None) -> Callable[[BuilderT], BuilderT]:
    """Decorator registering a builder under ``name`` (default: the function's name)."""

    def wrapper(fn: BuilderT) -> BuilderT:
        key = name or fn.__name__
        if key in BUILTIN_MODELS:
            raise ValueError(f"an entry is already registered under the name {key!r}")
        BUILTIN_MODELS[key] = fn
        return fn

    return wrapper


def list_models() -> list[str]:
    """Every registered model name, sorted."""
    return sorted(BUILTIN_MODELS)


def get_model(name: str, *, num_classes: int, **kwargs) -> nn.Module:
    """Build the model registered as ``name``; ``kwargs`` go to its builder.

    Every model maps ``(B, C, T, H, W)`` float clips to ``(B, num_classes)`` logits and has ``is_causal``.
    An unknown name raises :class:`~vidrcnn.errors.ConfigError` listing the closest names; so do options the builder
    rejects (an unknown keyword, a bad value), naming the model, the options and the builder's reason.
    """
    try:
        fn = BUILTIN_MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(BUILTIN_MODELS), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known models: {', '.join(list_models())}"
        raise ConfigError(None, f"unknown model {name!r}{hint}") from None
    try:
        return fn(num_classes=num_classes, **kwargs)
    except (TypeError, ValueError) as exc:  # from the builder's signature or its checks: the caller's options
        options = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no options"
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        takers = models_taking(unknown[1]) if unknown and unknown[1] in kwargs else []
        if takers:  # an option of other models' builders (a cell's own options are not listed here)
            raise ConfigError(None, f"model {name!r} has no option {unknown[1]!r} (given {options}); the models "
                                    f"that take it: {', '.join(takers)}") from None
        raise ConfigError(None, f"cannot build model {name!r} with {options}: {exc}") from None


def models_taking(option: str) -> list[str]:
    """The registered models whose builder names ``option`` among its parameters."""
    return [n for n in list_models() if option in inspect.signature(BUILTIN_MODELS[n]).parameters]
