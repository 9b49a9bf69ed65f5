"""The one error hierarchy of every stage; each class carries the exit code it ends the process with.

A code means the same thing in every stage (the README's exit-code table is this
module), so a script driving `make dataset` can tell "fix your config" from "the
site is down" from "run the earlier stage first" without reading messages. Stages
raise these with a message a person can act on; `pipeline.runner` turns them into
one line on stderr and the code.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Something the stage cannot get past; the message says what and how to fix it."""

    exit_code = 1


class ConfigError(PipelineError, ValueError):
    """A bad command line or config file: fixed by editing the TOML or the flags.

    Also a ValueError, because dataclass validation raises ValueError and the config
    loader turns those into this class with the key's location.
    """

    exit_code = 2


class SiteUnreachable(PipelineError):
    """No site answered at all: no network, a proxy, or a wrong base_url."""

    exit_code = 3


class InputMissing(PipelineError):
    """What an earlier stage writes is not there yet (the message names the stage to run)."""

    exit_code = 4


class Diverged(PipelineError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""

    exit_code = 5


class SiteChanged(PipelineError):
    """A site answered, but nothing could be crawled from it: its markup probably changed, or
    robots.txt disallows the source's listing. Retrying will not help; the message says what will."""

    exit_code = 6


class Locked(PipelineError):
    """Another run holds this DATA directory, or this training run (its pid is in the message): two runs
    at once would redo, or delete, each other's work. Wait for it, or pass --wait to queue behind it."""

    exit_code = 7


class Interrupted(PipelineError):
    """Ctrl-C or SIGTERM: everything written so far is kept and a re-run finishes the work."""

    exit_code = 130


EXIT_CODES: dict[int, str] = {
    0: "success",
    PipelineError.exit_code: "failed: an input or output error (the line names the file), or an internal error",
    ConfigError.exit_code: "usage or config error: fix the flag or the TOML key the line names",
    SiteUnreachable.exit_code: "no site could be reached: check the network, the proxy and base_url",
    InputMissing.exit_code: "an earlier stage's output is missing: run `make dataset` (or the stage named) first",
    Diverged.exit_code: "training diverged (non-finite loss); resume from the last checkpoint with a lower lr",
    SiteChanged.exit_code: "a site answered but yielded nothing (markup changed, or robots.txt disallows it)",
    Locked.exit_code: "another run holds this DATA directory or training run (the line gives its pid): wait, or pass --wait",
    Interrupted.exit_code: "interrupted (Ctrl-C / SIGTERM); re-run the same command to finish",
}
