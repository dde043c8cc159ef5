"""Command-line options the shells share, and the one way to tie an option to a config default.

A trainer's or service's config object (a dataclass such as `classification.training.
TrainConfig` or `serve.settings.Settings`) holds the defaults; `option` reads the default of
`--some-flag` from the field `some_flag`, so the parser and the config cannot drift apart.
`add_training_options` adds the options every trainer has, with one spelling, type and help.
`keyword_options` hands parsed options on to a library function by parameter name.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from store.cli_errors import positive_int


def dest_of(flag: str) -> str:
    """The attribute argparse stores `--some-flag` under: `some_flag`."""
    return flag.lstrip("-").replace("-", "_")


def option(
    parser: argparse.ArgumentParser | Any, defaults: Any, flag: str, help: str | None = None, **kw
) -> argparse.Action:
    """Add `flag`, its default the field of `defaults` with the same name (unless given)."""
    kw.setdefault("default", getattr(defaults, kw.get("dest") or dest_of(flag)))
    return parser.add_argument(flag, help=help, **kw)


def add_training_options(parser: argparse.ArgumentParser, defaults: Any) -> None:
    """--epochs, --batch-size, --lr, --patience and --seed, defaults read from `defaults`."""
    group = parser.add_argument_group("training")
    option(
        group,
        defaults,
        "--epochs",
        "most epochs (early stopping may end sooner)",
        type=positive_int,
    )
    option(group, defaults, "--batch-size", "examples per optimizer step", type=positive_int)
    option(group, defaults, "--lr", "Adam learning rate (the peak of a schedule)", type=float)
    option(group, defaults, "--patience", "early-stopping patience, epochs", type=int)
    option(group, defaults, "--seed", "random seed (same seed, same run)", type=int)


def defaults_of(function: Callable[..., Any]) -> SimpleNamespace:
    """A function's parameter defaults as attributes: the config of a function-shaped library."""
    return SimpleNamespace(
        **{
            name: parameter.default
            for name, parameter in inspect.signature(function).parameters.items()
            if parameter.default is not inspect.Parameter.empty
        }
    )


def keyword_options(function: Callable[..., Any], args: argparse.Namespace) -> dict[str, Any]:
    """The parsed options named like `function`'s parameters that have defaults, for
    `function(first, **keyword_options(function, args))`: a new option needs one edit, not two."""
    return {
        name: getattr(args, name)
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not inspect.Parameter.empty and hasattr(args, name)
    }
