"""Named exceptions that carry a reason a user can act on."""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(ValueError):
    """A setting is invalid; raised before any work starts.

    The message names the key, the bad value and what would have been valid,
    so that a user can fix the setting without reading code. ``kind`` names
    where the key lives ('setting' of a Python config object by default;
    ``RunConfigError`` says 'run-config key').
    """

    kind = "setting"

    def __init__(self, key: str, value: object, valid: Iterable[object] | str) -> None:
        if isinstance(valid, str):
            expected = valid
        else:
            expected = "one of " + ", ".join(repr(v) for v in valid)
        self.key, self.value, self.expected = key, value, expected
        super().__init__(f"{self.kind} '{key}': got {value!r}; expected {expected}")


class RunConfigError(ConfigError):
    """A key of Flower's run config (``[tool.flwr.app.config]`` / ``--run-config``) is invalid."""

    kind = "run-config key"


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are not where the data-dir setting points.

    The message lists the files expected and how to obtain them.
    """

    def __init__(self, dataset: str, root: str, expected: list[str], how_to_get: str) -> None:
        self.dataset, self.root, self.expected = dataset, root, expected
        files = "\n  ".join(expected)
        super().__init__(
            f"dataset '{dataset}': files not found under data-dir '{root}'.\n"
            f"Expected:\n  {files}\nHow to get them: {how_to_get}"
        )


class DataFormatError(DataNotFoundError):
    """A dataset file is there but truncated or corrupt.

    The message names the file, what was expected of it and what was found.
    A subclass of DataNotFoundError because, for a run, a file that cannot be
    read is as good as absent: every handler of missing data (the launcher's
    check before a run) reports a damaged file the same way.
    """

    def __init__(self, dataset: str, path: object, expected: str, found: str) -> None:
        self.dataset, self.root, self.expected, self.path = dataset, str(path), [expected], str(path)
        FileNotFoundError.__init__(
            self, f"dataset '{dataset}': file '{path}' is truncated or corrupt: expected {expected}; "
                  f"found {found}. Copy or extract it again."
        )


class TrainingFailed(RuntimeError):
    """The federation did not really train: a round in which no client trained, or a
    client that failed in every round. The message names the clients and the first reason."""
