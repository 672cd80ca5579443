"""Real training steps on the tiny random model through the contract test kit."""
from grpo_zoo.testing import BASE_CONFIG, roundtrip_state

G = BASE_CONFIG["sampling"]["group_size"]  # 3
P = BASE_CONFIG["train"]["prompts_per_step"]  # 2
METRICS = {
    "mc_grpo/pivots_dropped",
    "mc_grpo/mad_zero_frac",
    "mc_grpo/nonzero_adv_frac",
    "mc_grpo/adv_abs_max",
    "mc_grpo/sign_flip_rate",
    "mc_grpo/sign_reversal_rate",
    "mc_grpo/sign_flip_rate_mean_baseline",
    "mc_grpo/sign_reversal_rate_mean_baseline",
}


def test_training_step_through_the_kit(zoo_train_step):
    # pooled reference: the sign-flip figures exist from the first step on
    result = zoo_train_step(plugins=["mc_grpo"], config={"mc_grpo": {"sign_flip_reference": "pooled"}}, steps=1)
    m = result.last
    assert METRICS <= set(m)
    # G = 3: G + 1 = 4 is even, so one more rollout makes each group odd (5); its pivot leaves the loss
    assert m["rollouts"] == (G + 2) * P
    assert m["rollouts_in_loss"] == (G + 1) * P
    assert m["mc_grpo/pivots_dropped"] == P
    assert 0.0 <= m["mc_grpo/sign_flip_rate"] <= 1.0
    assert 0.0 <= m["mc_grpo/mad_zero_frac"] <= 1.0
    assert m["advantage/abs_mean"] > 0
    # the per-task reward table behind the sign-flip figure is checkpointable state
    state = roundtrip_state(result.ctx, "mc_grpo")
    assert len(state["table"]) == P and all(n == G + 2 for _, n in state["table"].values())


def test_training_with_an_even_g(zoo_train_step):
    # G = 2: G + 1 = 3 is odd already, nothing is rounded
    result = zoo_train_step(plugins=["mc_grpo"], config={"sampling": {"group_size": 2}}, steps=1)
    assert result.last["rollouts"] == 3 * P and result.last["rollouts_in_loss"] == 2 * P
    assert "mc_grpo/sign_flip_rate" not in result.last  # history reference: no earlier visit yet


def test_mean_drop_min_control_trains(zoo_train_step):
    config = {"sampling": {"group_size": 2}, "mc_grpo": {"baseline": "mean_drop_min", "nonzero_rescale": True}}
    result = zoo_train_step(plugins=["mc_grpo"], config=config, steps=1)
    assert result.last["rollouts"] == 3 * P and result.last["rollouts_in_loss"] == 2 * P


def test_history_reference_survives_resume(zoo_train_step, tmp_path):
    # Two tasks, both drawn every step. With the history reference the sign-flip
    # figure needs earlier rewards of the task: absent at step 0, present at step 1
    # only if the table came back from the checkpoint.
    config = {"task": {"size": P}, "mc_grpo": {"sign_flip_reference": "history", "rescale": "clip"}}
    run = tmp_path / "run"
    first = zoo_train_step(plugins=["mc_grpo"], config=config, steps=1, run_dir=run)
    assert "mc_grpo/sign_flip_rate" not in first.last
    resumed = zoo_train_step(plugins=["mc_grpo"], config=config, steps=2, run_dir=run, resume=True)
    assert [m["step"] for m in resumed.metrics] == [0, 1]
    assert "mc_grpo/sign_flip_rate" in resumed.last
    assert resumed.last["mc_grpo/adv_abs_max"] <= 1.0  # rescale = "clip", clip_value = 1
    assert resumed.last["rollouts_in_loss"] == (G + 1) * P
