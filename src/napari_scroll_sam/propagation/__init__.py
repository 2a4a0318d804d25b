"""Propagation: carry prompts on a few slices through the volume (see ``run``).

``plan`` (seeds and walks), ``engine`` (one slice step: prior, memory, competition,
corridor, judge), ``prior`` (the motion prior), ``stop`` (stop rules), ``adapt``
(decoder fine-tuning on the anchors), ``run`` (the generator).
"""

from .engine import WalkConfig
from .plan import Seed
from .run import SliceReport, _write, propagate
from .stop import PropagationError, StopRule
from .summary import summarize, walk_summary

__all__ = ["PropagationError", "Seed", "SliceReport", "StopRule", "WalkConfig", "propagate", "summarize",
           "walk_summary"]
