"""The Python worker SDK: register handlers by job type, then run."""
from .sdk import Worker

__all__ = ["Worker"]
