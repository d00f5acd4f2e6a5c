"""Components whose constructor arguments are checked before the component exists."""

from __future__ import annotations

from amaranth.lib import wiring

__all__ = ["CheckedComponent"]


class CheckedComponent(wiring.Component):
    """A ``wiring.Component`` that calls the classmethod ``check`` with the constructor's arguments
    before the object is created: a refused config raises there, so no component (and none of its
    parts) is left unused for Amaranth to warn about. ``check`` raises ``ConfigError`` or
    ``TypeError`` with one sentence; ``__init__`` may then assume valid arguments."""

    def __new__(cls, *args, src_loc_at: int = 0, **kwargs):
        cls.check(*args, **kwargs)
        return super().__new__(cls, *args, src_loc_at=src_loc_at + 1, **kwargs)

    @classmethod
    def check(cls, *args, **kwargs) -> None:
        """Raises if the arguments are not a valid component."""
