"""The check of a component's integer parameters, shared by the components that take sizes."""


def check_ints(who: str, **values):
    """Raise ValueError unless every ``name=(value, lowest)`` is an int (not a bool) of at least ``lowest``."""
    for name, (v, lo) in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{who} {name} must be an integer >= {lo}, got {v!r}")
