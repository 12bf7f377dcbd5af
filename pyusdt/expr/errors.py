"""The one exception a bad expression raises."""
from __future__ import annotations

from pyusdt.errors import ConfigError

# What str.splitlines() breaks at.
_LINE_BREAKS_AS_SPACES = {ord(c): " " for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


class ExpressionError(ConfigError):
    """An expression that cannot be parsed, typed or fitted into a program.

    `text` is the whole expression as given, `position` the 0-based column of
    the offending token or node, `reason` what is wrong there.  The message
    is one line (the CLI prints it as is), so line breaks (in the text, or a
    string literal quoted in the reason) are shown as spaces: one character
    each, so the column still holds.
    """

    def __init__(self, text: str, position: int, reason: str) -> None:
        self.text = text
        self.position = position
        self.reason = reason
        message = f"{reason} at column {position + 1} of '{text}'"
        super().__init__(message.translate(_LINE_BREAKS_AS_SPACES))

    def __reduce__(self) -> tuple[type[ExpressionError], tuple[str, int, str]]:
        # Exceptions pickle their args by default; ours are not the message.
        return (type(self), (self.text, self.position, self.reason))
