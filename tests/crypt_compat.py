"""The system's crypt(3), where Python still exposes it, to cross-check the pure implementation."""

import warnings


def system_crypt():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # removed in Python 3.13
    except ImportError:
        return None
    return crypt.crypt
