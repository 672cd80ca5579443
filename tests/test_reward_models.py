"""[[reward.models]]: a tiny random sequence-classification model built here scores prompt + completion."""
from __future__ import annotations

import pytest
import torch

from grpo_zoo.context import make_context
from grpo_zoo.reward_models import load
from grpo_zoo.testing import BASE_CONFIG, merge
from grpo_zoo.types import Rollouts, Task


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A 2-layer random Llama classifier (1 label) with the tiny model's tokenizer, saved to a folder."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from grpo_zoo.trainer.models import tiny_model_path

    tok = AutoTokenizer.from_pretrained(str(tiny_model_path()))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, num_labels=1, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("rm") / "tiny-rm"
    LlamaForSequenceClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path, tok


def _rollouts():
    tasks = [Task(id="a", prompt="What is 2+2?"), Task(id="b", prompt=[{"role": "user", "content": "Name a colour."}])]
    comps = [" 4", " It is four, I think, after a long and careful thought.", "Blue.", "Red"]
    n = len(comps)
    return Rollouts(tasks=tasks, group=torch.tensor([0, 0, 1, 1]), prompt_text=[""] * n, prompt_ids=[[1]] * n,
                    completion_ids=[[2]] * n, completion_text=comps)


def test_reward_model_column_matches_unbatched_forward(classifier):
    path, tok = classifier
    # batch_size 3: two batches, one of them padded (texts of different lengths)
    ctx = make_context(merge(BASE_CONFIG, {"reward": {"builtin": [], "models": [{"path": str(path), "batch_size": 3}]}}))
    r = _rollouts()
    cols = ctx.hooks.rewards(ctx, r)
    assert list(cols) == ["tiny-rm"]  # named after the folder, as TRL names a reward model's column
    got = cols["tiny-rm"]
    # reference: TRL's text construction, each text alone through the model (no padding at all)
    from trl.data_utils import apply_chat_template

    model, _ = load(str(path), "cpu")
    texts = ["What is 2+2? 4", "What is 2+2? It is four, I think, after a long and careful thought."]
    for c in ("Blue.", "Red"):
        texts.append(apply_chat_template({"messages": r.tasks[1].prompt + [{"role": "assistant", "content": c}]}, tok)["text"])
    want = []
    for t in texts:
        ids = tok(t, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            want.append(float(model(**ids).logits[0, 0]))
    torch.testing.assert_close(got, torch.tensor(want), rtol=1e-5, atol=1e-5)
    assert got.std() > 0  # a random model still tells the texts apart


def test_reward_model_named_column_and_errors(classifier, tmp_path):
    path, _ = classifier
    ctx = make_context(merge(BASE_CONFIG, {"reward": {"builtin": [], "models": [{"path": str(path), "name": "rm"}]}}))
    assert list(ctx.hooks.rewards(ctx, _rollouts())) == ["rm"]
    ctx = make_context(merge(BASE_CONFIG, {"reward": {"builtin": [], "models": [{"path": str(tmp_path / "nope")}]}}))
    with pytest.raises(Exception, match="not a local folder nor in the local Hugging Face cache"):
        ctx.hooks.rewards(ctx, _rollouts())


def test_reward_model_column_equals_trls(classifier, tmp_path):
    """TRL's own _calculate_rewards with the same classifier as a reward_funcs entry gives the same column."""
    trl = pytest.importorskip("trl")
    from datasets import Dataset

    from grpo_zoo.trainer.models import load_model_and_tokenizer

    path, _ = classifier
    r = _rollouts()
    policy, tok = load_model_and_tokenizer("tiny-random")
    args = trl.GRPOConfig(output_dir=str(tmp_path / "trl"), num_generations=2, per_device_train_batch_size=2,
                          max_completion_length=3, report_to=[], use_cpu=True, bf16=False, save_strategy="no")
    for task_idx in (0, 1):  # TRL takes a batch as all-text or all-chat: one of each
        rows = [i for i in range(len(r)) if int(r.group[i]) == task_idx]
        prompt = r.tasks[task_idx].prompt
        trainer = trl.GRPOTrainer(model=policy, reward_funcs=[str(path)], args=args,
                                  train_dataset=Dataset.from_dict({"prompt": [prompt]}), processing_class=tok)
        completions = [r.completion_text[i] if isinstance(prompt, str) else [{"role": "assistant", "content": r.completion_text[i]}]
                       for i in rows]
        theirs = trainer._calculate_rewards([{"prompt": prompt}] * len(rows), [prompt] * len(rows), completions,
                                            [r.completion_ids[i] for i in rows])[:, 0]
        sub = r.take(rows)
        ctx = make_context(merge(BASE_CONFIG, {"reward": {"builtin": [], "models": [{"path": str(path)}]}}))
        ours = ctx.hooks.rewards(ctx, sub)["tiny-rm"]
        torch.testing.assert_close(ours, theirs.float(), rtol=1e-5, atol=1e-5)
