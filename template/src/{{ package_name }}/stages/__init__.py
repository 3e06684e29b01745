"""The pipeline's stages, one module per stage of ``dvc.yaml``, named after it.

This is the code a data scientist changes. Each stage reads its inputs and
params, writes its outputs, and imports only from :mod:`..shared`.
"""
