"""Back ends: where a drill's cluster runs and how faults reach it (see base.py)."""
