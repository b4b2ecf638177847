"""Commands by name: a table of name -> Command("module:function", one-line help), each imported only when it runs.

The `lra` entry point, `lra data` and `lra bench` all dispatch through `dispatch`, so each lists its commands the
same way (`--help`) and loads only the module of the command that runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

HELP = ("-h", "--help")


@dataclass(frozen=True)
class Command:
    """A command: its function as "module:function", called with the arguments after the command's name."""

    target: str
    help: str  # one line, shown by --help
    keep_name: bool = False  # the function gets the command's name too (LightningCLI parses its subcommand itself)

    def run(self, name: str, argv: Sequence[str]) -> int:
        module, _, function = self.target.partition(":")
        call: Callable[[list[str]], int] = getattr(importlib.import_module(module), function)
        return call([name, *argv] if self.keep_name else list(argv))


def usage(prog: str, commands: Mapping[str, Command], epilog: str = "") -> str:
    """`usage: PROG {a,b,...} ...`, then one line per command with its help."""
    width = max(map(len, commands))
    lines = [f"usage: {prog} {{{','.join(commands)}}} ...", "", "commands:"]
    lines += [f"  {name:<{width}}  {command.help}" for name, command in commands.items()]
    lines += ["", f"`{prog} COMMAND --help` shows a command's options."]
    return "\n".join([*lines, *([epilog] if epilog else [])])


def dispatch(prog: str, commands: Mapping[str, Command], argv: Sequence[str], epilog: str = "") -> int:
    """Run the command argv[0] names on the rest of argv; --help lists the commands (exit 0), no or an unknown
    name does too, after saying so (exit 2)."""
    if argv and argv[0] in commands:
        return commands[argv[0]].run(argv[0], argv[1:])
    print(usage(prog, commands, epilog))
    if argv and argv[0] in HELP:
        return 0
    print(f"{prog}: " + (f"unknown command {argv[0]!r}" if argv else "a command is needed"))
    return 2
