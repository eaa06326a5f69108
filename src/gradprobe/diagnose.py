"""`gradprobe diagnose`: the command lives in gradprobe.diagnosis.cli (this name is the CLI's)."""

from gradprobe.diagnosis.cli import add_arguments, load_factory, run

__all__ = ["add_arguments", "load_factory", "run"]
