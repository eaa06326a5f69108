"""Run directories, the run context handed to experiments, and execution backends."""
