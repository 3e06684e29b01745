"""The pipeline's stages, one module per stage of ``dvc.yaml``, named after it.

This is the code a data scientist changes. Each stage reads its inputs and
params, writes its outputs, and imports only from :mod:`..shared`.
"""

# Start each stage's clock before the stage imports its libraries, so that its
# wall time in the run record (shared/resources.py) counts them too.
from ..shared import resources as resources
