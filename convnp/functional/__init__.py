"""Pure forward/backward pairs on arrays (NumPy or CuPy)."""
from .activation import *  # noqa: F401,F403
from . import activation
from .conv import *  # noqa: F401,F403
from .padding import *  # noqa: F401,F403
from . import conv, padding
from .pooling import *  # noqa: F401,F403
from . import pooling
from .normalization import *  # noqa: F401,F403
from . import normalization
from .loss import *  # noqa: F401,F403
from . import loss
