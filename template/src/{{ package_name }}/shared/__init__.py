"""What the stages and the commands share: paths, params, split I/O, run records, git, the tracker.

Nothing here imports a stage or a command.
"""
