"""diffusion_lib: the tested library behind "AIGC: Principles and Code" (《AIGC原理与代码实例讲解》).

Modules, dependencies pointing one way:

- :mod:`diffusion_lib.checks`     ``check`` / ``check_le``: numerical checks that can fail
- :mod:`diffusion_lib.schedules`  β schedules and SNR helpers (chapter 4)
- :mod:`diffusion_lib.diffusion`  ``GaussianDiffusion``: forward process, posterior, losses, bits/dim
                                  (chapters 4–5)
- :mod:`diffusion_lib.data`       bundled and generated datasets (nothing is downloaded)
- :mod:`diffusion_lib.viz`        image grids and animations
"""

from .checks import check, check_le
from .diffusion import GaussianDiffusion
from .schedules import get_beta_schedule

__version__ = "0.1.0"

__all__ = ["GaussianDiffusion", "check", "check_le", "get_beta_schedule", "__version__"]
