"""Reading magicgui fields the same way in every panel."""

from __future__ import annotations

from magicgui.widgets import FileEdit


def chosen_path(edit: FileEdit) -> str | None:
    """The path typed or picked in ``edit``; None when the field is empty."""
    value = edit.value
    return str(value) if value not in (None, "") and str(value) not in ("", ".") else None
