"""``--run-config`` read strictly: every pair is ``key=value``, every key once, every file present.

Flower's own parser silently drops ``lr=`` (no value) and starts a default
run, raises a raw ClickException for a key given twice and a traceback for a
missing TOML file. Here each of those is one line naming the key, the value
and what is valid, before anything starts.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from fedsnn.errors import RunConfigError

# key=value, the value quoted ('...' or "...") or a bare word; anything else is malformed
PAIR = re.compile(r"\s*(?P<key>[^=\s]+)=(?P<value>'[^']*'|\"[^\"]*\"|[^\s'\"]*)(?=\s|$)")


def parse_run_config(items: list[str]) -> dict[str, Any]:
    """Merge every ``--run-config`` item (a TOML file or 'k=v k2=v2') into one mapping."""
    merged: dict[str, Any] = {}
    for item in items:
        pairs = _read_toml(item) if item.strip().endswith(".toml") else _read_pairs(item)
        for key, value in pairs:
            if key in merged:
                raise RunConfigError(key, value, f"the key once (it is also given as {merged[key]!r})")
            merged[key] = value
    return merged


def _read_toml(item: str) -> list[tuple[str, Any]]:
    path = Path(item.strip()).expanduser()
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except FileNotFoundError:
        raise RunConfigError("--run-config", item, "an existing TOML file of key = value lines (file not found)") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RunConfigError("--run-config", item, f"a readable TOML file of key = value lines ({exc})") from None
    nested = [k for k, v in table.items() if isinstance(v, dict)]
    if nested:
        raise RunConfigError(nested[0], f"[{nested[0]}] table in {item}", "flat key = value lines (no tables)")
    return list(table.items())


def _read_pairs(text: str) -> list[tuple[str, Any]]:
    pairs, pos = [], 0
    while text[pos:].strip():
        match = PAIR.match(text, pos)
        if match is None:
            fragment = text[pos:].split()[0]
            raise RunConfigError(fragment.split("=")[0], fragment, "key=value pairs separated by spaces, e.g. lr=0.1 name='run1'")
        key, raw = match["key"], match["value"]
        if raw == "":
            raise RunConfigError(key, "", "a value after '=', e.g. lr=0.1, download=true or name='run1'")
        try:
            value = tomllib.loads(f"value = {raw}")["value"]
        except tomllib.TOMLDecodeError:
            raise RunConfigError(key, raw, "a number, true/false or a quoted string like name='run1'") from None
        pairs.append((key, value))
        pos = match.end()
    return pairs


def toml_overrides(overrides: dict[str, Any]) -> str:
    """One ``--run-config`` string for ``flwr run`` (TOML values; strings double-quoted)."""
    def toml(value: Any) -> str:
        return str(value).lower() if isinstance(value, bool) else json.dumps(value)
    return " ".join(f"{key}={toml(value)}" for key, value in overrides.items())
