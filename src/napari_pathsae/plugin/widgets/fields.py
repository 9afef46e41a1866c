"""Reading and laying out magicgui fields the same way in every panel."""

from __future__ import annotations

from magicgui.widgets import FileEdit


def chosen_path(edit: FileEdit) -> str | None:
    """The path typed or picked in ``edit``; None when the field is empty."""
    value = edit.value
    return str(value) if value not in (None, "") and str(value) not in ("", ".") else None


def compact(combo) -> None:
    """A ComboBox that does not widen its panel to fit a long layer name (the text is elided)."""
    from qtpy.QtWidgets import QComboBox

    combo.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.native.setMinimumContentsLength(12)
