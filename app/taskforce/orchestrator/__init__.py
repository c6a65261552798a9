"""The orchestrator: a pysyncobj Raft group whose leader alone schedules."""
