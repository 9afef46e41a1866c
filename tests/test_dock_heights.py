"""How a dock column is shared as panels land (plugin/widgets/dock_heights.py), on the heights measured in napari."""

from napari_pathsae.plugin.widgets.dock_heights import FORM_SHARE, shared_heights


def test_the_model_panel_squeezed_by_later_panels_gets_its_fields_back():
    """Model, Open, then the feature browser from the Plugins menu (1600 x 1000 window): Qt had left the Model
    panel 69 px (two fields) and the Open panel 47 px of blank under its button."""
    heights = shared_heights([69, 283, 525], forms=[660, 236, None], tables=[None, None, 342])
    assert heights == [299, 236, 342]  # Open whole, the browser its least height, the Model panel the rest
    assert sum(heights) == 877


def test_a_column_whose_forms_show_their_fields_is_left_as_it_is():
    assert shared_heights([560, 240, 400], forms=[660, 236, None], tables=[None, None, 342]) is None


def test_forms_alone_are_shown_whole_when_they_fit_and_other_docks_keep_their_height():
    assert shared_heights([300, 200, 377], forms=[236, None, 400], tables=[None, None, None]) == [236, 200, 400]
    assert shared_heights([69, 808], forms=[660, 236], tables=[None, None]) == [641, 236]  # 877 px: the rest


def test_a_crowded_column_keeps_half_for_tables_and_shares_the_rest_between_forms():
    total = 1000
    heights = shared_heights(
        [100] * 6 + [400], forms=[236, 660, None, None, None, None, 205], tables=[None, None, 764, 342, 700, 400, None]
    )
    assert sum(heights[2:6]) <= total // 2 and min(heights[2:6]) > 0
    forms = [heights[0], heights[1], heights[6]]  # the other half, shared evenly when no form fits whole
    assert abs(sum(forms) - total // 2) <= 2 and max(forms) - min(forms) <= 1
    assert shared_heights([600, 400], forms=[None, 660], tables=[342, None]) == [550, int(FORM_SHARE * 1000)]
