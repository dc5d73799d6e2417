"""The trigger conditions of the local Vertex driver (:mod:`tfx_pipeline.v2_local.cel`): the CEL subset TFX emits."""
import pytest

import tfx_pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from tfx_pipeline.v2_local import Artifact, SpecError, evaluate_condition

GOOD = "(inputs.artifacts['model_blessing'].artifacts[0].metadata['is_new_model'] == 1.0)"


@pytest.fixture
def inputs():
    blessing_ = Artifact("n/1", "title: tfx.ModelBlessing\n", "/x", {"is_new_model": 1.0, "kind": "new"},
                         "SessionEvaluator", "r", 0.0)
    return {"model_blessing": [blessing_], "nothing": []}


def test_condition_over_an_input_the_task_lacks_is_an_error(inputs):
    """What TFX 1.21 compiled for ``channel.future()`` before the fix: the backend cannot evaluate it."""
    assert evaluate_condition(GOOD, inputs, "Pusher")
    assert not evaluate_condition(GOOD.replace("1.0)", "0.0)"), inputs, "Pusher")
    assert evaluate_condition(f"!{GOOD} || {GOOD} && (1 < 2)", inputs, "Pusher")
    with pytest.raises(SpecError, match=r"_SessionEvaluator\.blessing.*its input artifacts: model_blessing, nothing"):
        evaluate_condition(GOOD.replace("model_blessing", "_SessionEvaluator.blessing"), inputs, "Pusher")


@pytest.mark.parametrize("condition,expected", [
    ("inputs.artifacts['model_blessing'].artifacts[0].metadata['kind'] == 'new'", True),
    ("inputs.artifacts['model_blessing'].artifacts[0].metadata['kind'] != \"new\"", False),
    ("1 <= 1 && 2 >= 3", False),
    ("!(1 > 2) && !!(2 > 1)", True),
    ("1 == 2 || 3 < 4", True),
])
def test_literals_comparisons_and_logic(inputs, condition, expected):
    assert evaluate_condition(condition, inputs, "Pusher") is expected


@pytest.mark.parametrize("condition,match", [
    ("inputs.artifacts['nothing'].artifacts[0].metadata['x'] == 1",
     r"Pusher: trigger condition .*: inputs\.artifacts\['nothing'\]\.artifacts\[0\] does not exist \(no artifact\)"),
    ("outputs.artifacts['x'] == 1", r"only inputs\.artifacts\[\.\.\.\] can be read"),
    ("1 == 1 @ 2", r"cannot parse the trigger condition .* at ' @ 2'"),
    ("(1 == 1", r"expected '\)'"),
    ("1 == 1 2", r"unexpected '2'"),
])
def test_unsupported_or_unreadable_condition_is_one_clear_error(inputs, condition, match):
    with pytest.raises(SpecError, match=match):
        evaluate_condition(condition, inputs, "Pusher")
