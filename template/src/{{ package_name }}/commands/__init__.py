"""The project's tooling: the commands behind ``make experiments``, ``make promote`` and the rest.

They read what the stages wrote (metrics, run records, ``dvc.lock``) and
never run inside the pipeline; nothing in the stages imports them.
"""
