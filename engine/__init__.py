"""StepEdit engine: queues speech edits and renders them on a resident backend."""

__version__ = "0.1.0"
