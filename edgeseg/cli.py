"""The ``edgeseg`` command: a thin dispatcher over one module per sub-command.

Each sub-command module exposes ``main(argv: list[str]) -> int`` and owns its own
argument parser (``edgeseg serve`` parses TensorFlow Serving's ``--flag=value``
spelling, for instance). Modules are imported only when their command runs, so
``edgeseg --help`` stays fast and does not import TensorFlow.

An :class:`~edgeseg.errors.EdgesegError` escaping a command becomes one line on
stderr and a non-zero exit status; anything else is a bug and keeps its traceback.
A command that needs TensorFlow in an install without it (``pip install edgeseg``, no
``[tensorflow]`` extra) says so in one line naming the extra and exits 2.

Verbosity: the commands that import TensorFlow (:data:`TF_COMMANDS`) run with TensorFlow's
C++ log level raised (TF_CPP_MIN_LOG_LEVEL, unless set) and, when run as the program, with
its start-up noise filtered off stderr (tfnoise.py: the CUDA probe on machines without a GPU
driver). ``--verbose`` (before or after the command name) or ``EDGESEG_VERBOSE=1`` shows
everything TensorFlow prints.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from edgeseg import __version__
from edgeseg.errors import EdgesegError, Status

# name -> (module, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "export": ("exporters.command", "export a trained model as a two-tag SavedModel version"),
    "inspect": ("edgeseg.inspect", "show what an exported SavedModel holds"),
    "serve": ("edgeseg.serving.command", "TensorFlow-Serving-compatible model server"),
    "agent": ("edgeseg.agent.command", "camera agent: frames -> Predict -> masks over MQTT"),
    "subscribe": ("edgeseg.subscribe", "print the masks a camera publishes over MQTT"),
    "view": ("edgeseg.view", "live preview page for a camera's MQTT masks"),
    "models": ("edgeseg.models", "fetch reference models into the user cache"),
    "demo": ("edgeseg.demo", "export, serve and run the whole kit on a demo clip"),
}

TENSORFLOW_HINT = "install it with: pip install 'edgeseg[tensorflow]'"
_TENSORFLOW_PACKAGES = {"tensorflow", "tensorflow_serving", "tf_keras"}

# commands that import TensorFlow -> their quiet TF_CPP_MIN_LOG_LEVEL (1: no INFO, 2: no WARNING)
TF_COMMANDS = {"serve": "1", "export": "2", "inspect": "2", "demo": "2"}

# CLI exit codes by status: usage-type errors get 2 (as argparse), the rest 1.
_USAGE_STATUSES = {Status.INVALID_ARGUMENT, Status.ALREADY_EXISTS, Status.NOT_FOUND}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"usage: edgeseg COMMAND [ARGS...]   (edgeseg {__version__})", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "Run 'edgeseg COMMAND --help' for a command's options.",
              "--verbose (or EDGESEG_VERBOSE=1) shows all of TensorFlow's own log lines."]
    return "\n".join(lines)


def exit_code(error: EdgesegError) -> int:
    return 2 if error.status in _USAGE_STATUSES else 1


def _lacks_tensorflow(exc: ModuleNotFoundError) -> bool:
    return (exc.name or "").partition(".")[0] in _TENSORFLOW_PACKAGES


def _needs_tensorflow(name: str) -> int:
    print(f"edgeseg {name}: this command needs TensorFlow, which is not installed; "
          f"{TENSORFLOW_HINT}", file=sys.stderr)
    return 2

def _verbosity(name: str, rest: list[str], program: bool, verbose: bool) -> list[str]:
    """Set TensorFlow's logging up for ``name``; its arguments without ``--verbose``."""
    if name not in TF_COMMANDS:
        return rest
    verbose = verbose or "--verbose" in rest or os.environ.get("EDGESEG_VERBOSE", "") not in (
        "", "0")
    rest = [arg for arg in rest if arg != "--verbose"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else TF_COMMANDS[name])
    if program and not verbose:
        from edgeseg.tfnoise import quiet_native_stderr

        quiet_native_stderr()
    return rest


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = bool(args) and args[0] == "--verbose"
    args = args[1:] if verbose else args
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if args[0] == "--version":
        print(__version__)
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"edgeseg: unknown command {name!r}; expected one of: {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    module_name, _ = COMMANDS[name]
    rest = _verbosity(name, rest, program=argv is None, verbose=verbose)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if _lacks_tensorflow(exc):
            return _needs_tensorflow(name)
        if exc.name and module_name.startswith(exc.name):
            print(f"edgeseg: command {name!r} is not available in this build", file=sys.stderr)
            return 2
        raise
    try:
        return int(module.main(rest) or 0)
    except EdgesegError as exc:
        print(f"edgeseg {name}: error: {exc.message}", file=sys.stderr)
        return exit_code(exc)
    except ModuleNotFoundError as exc:  # a lazy import inside the command
        if _lacks_tensorflow(exc):
            return _needs_tensorflow(name)
        raise
    except KeyboardInterrupt:
        print(f"edgeseg {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
