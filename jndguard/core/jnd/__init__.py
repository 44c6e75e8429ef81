"""The JND engine: per-pixel, per-channel budgets below the Just Noticeable Difference.

Entry point::

    from jndguard.core.jnd import jnd_map
    J = jnd_map(images, model="yang", color="scaled", strength=1.0)   # (B,3,H,W), [0,1] units

- Classic models (:mod:`.classic`): Chou & Li (1995), Yang et al. NAMM (2005, default, with
  Canny edge protection) and Wu et al. (2017) pattern complexity, on BT.601 luma; then the
  colour step (:mod:`.color`): per-channel scaling k = (R 1.3, G 1.0, B 1.55), k = 1
  (``"gray"``) or a strict YCbCr budget (``"ycbcr"``).
- External learned models (:mod:`.external`): a TorchScript or ONNX file, RGB [0, 1] in,
  3-channel J out, used through the :class:`JNDModel` protocol. The papers JNDGuard follows
  use the learned HVS-SD JND (Jin et al. 2022); its weights are not published, so it is not
  shipped — a user who has it (or another learned model) loads it with
  :func:`load_external_jnd`.
- Full resolution: maps are computed tile by tile with a reflected halo (:mod:`.tiling`) and
  carried into recogniser-crop coordinates with a min-pool (:func:`jnd_to_crop`).

See ``docs/jnd.md`` and the specification ``docs/jnd.md`` (Specification).
"""

from jndguard.core.jnd._errors import ExternalModelError, JNDConfigError, MissingDependencyError
from jndguard.core.jnd.classic import HALO, MODELS, ClassicJND
from jndguard.core.jnd.color import (
    CHANNEL_NAMES,
    COLOR_MODES,
    RGB_SCALE,
    constrain_delta,
    rgb_to_luma,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from jndguard.core.jnd.crop import jnd_to_crop
from jndguard.core.jnd.engine import JNDModel, check_jnd_output, jnd_map, resolve_model
from jndguard.core.jnd.external import ExternalJND, load_external_jnd
from jndguard.core.jnd.stats import mean_levels, noise_psnr

__all__ = [
    "CHANNEL_NAMES",
    "COLOR_MODES",
    "HALO",
    "MODELS",
    "RGB_SCALE",
    "ClassicJND",
    "ExternalJND",
    "ExternalModelError",
    "JNDConfigError",
    "JNDModel",
    "MissingDependencyError",
    "check_jnd_output",
    "constrain_delta",
    "jnd_map",
    "jnd_to_crop",
    "load_external_jnd",
    "mean_levels",
    "noise_psnr",
    "resolve_model",
    "rgb_to_luma",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
]
