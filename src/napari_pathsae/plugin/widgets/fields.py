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


def scroll_up_and_down(scroll) -> None:
    """A magicgui scroll area (``Container(scrollable=True).root_native_widget``) kept as wide as its fields,
    a scroll bar and its border, whatever napari's style does to their widths: it scrolls only up and down."""
    from qtpy.QtCore import QEvent, QObject

    class FitWidth(QObject):
        def eventFilter(self, _watched, event) -> bool:
            if event.type() in (QEvent.Type.LayoutRequest, QEvent.Type.Show, QEvent.Type.StyleChange):
                fields = scroll.widget().minimumSizeHint().width()
                frame = 2 * scroll.frameWidth()  # (napari's style gives scroll areas a border)
                scroll.setMinimumWidth(fields + scroll.verticalScrollBar().sizeHint().width() + frame)
            return False

    scroll.widget().installEventFilter(FitWidth(scroll))  # parented: lives as long as the scroll area
