"""Golden models: the exact integer specification of every bit hwgen's hardware produces.

:mod:`.network` runs whole IR graphs (:func:`run`, :func:`run_layers`); :mod:`.blocks`
mirrors the hardware blocks by name (:func:`pe_mac`, :func:`systolic_array`,
:func:`post_process`).
"""

from .blocks import *
from .network import *
