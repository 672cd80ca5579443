"""One-GPU check: grpo-zoo against TRL 1.16's GRPOTrainer at bf16 on a Qwen2.5-0.5B-shaped model.

    python bench/gpu_step.py [--steps 4] [--prompts-per-step 4] [--group-size 8] [--max-new-tokens 128]

Self-contained, no downloads: a random-weight model is built from a Qwen2.5-0.5B-shaped config
(24 layers, hidden 896, MLP 4864, 14 query / 2 KV heads, tied embeddings) with the tokenizer of
the embedded default model (so its vocabulary: 49152 tokens, not Qwen's 151936). Both frameworks
train it with equal settings: bf16 mixed precision (fp32 masters), HF-style sampling (TRL:
transformers generate, no vLLM), the same prompts, group size, completion length, loss (grpo,
beta 0) and learning rate; each in its own subprocess. The time per step is the median over
the steps after the first. The last line is one JSON object: s/step each, completion tokens/s,
peak GPU memory each and the speedup (TRL / grpo-zoo). Without CUDA it prints a skip message
(and a JSON line with "skipped") and exits 0. CI does not run it.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SKIP = "bench/gpu_step.py: skipped: no CUDA device (it needs one GPU; CI does not run it)"
SHAPE = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
             num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1000000.0, tie_word_embeddings=True)


def build_model(folder: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from grpo_zoo.trainer.models import default_model_path

    tok = AutoTokenizer.from_pretrained(str(default_model_path()))
    cfg = Qwen2Config(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, **SHAPE)
    torch.manual_seed(0)
    Qwen2ForCausalLM(cfg).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def prompts(n: int) -> list[str]:
    from grpo_zoo.tasks import reasoning_gym_tasks

    return [t.prompt for t in reasoning_gym_tasks("basic_arithmetic", n, 0, {})]


def run_zoo(a, model: str) -> dict:
    import torch

    from grpo_zoo.context import make_context
    from grpo_zoo.trainer.loop import Trainer
    from grpo_zoo.trainer.rundir import read_jsonl

    cfg = {"model": model, "task": {"size": 256}, "reward": {"builtin": ["length"], "length_target": a.max_new_tokens},
           "sampling": {"group_size": a.group_size, "max_new_tokens": a.max_new_tokens, "batch_size": 256},
           "train": {"steps": a.steps, "prompts_per_step": a.prompts_per_step, "lr": 1e-6, "precision": "bf16",
                     "micro_batch_size": a.prompts_per_step * a.group_size, "samples_per_step": 0}}
    with tempfile.TemporaryDirectory() as tmp:
        Trainer(make_context(cfg), Path(tmp) / "run", progress=False, save_final=False).run()
        rows = read_jsonl(Path(tmp) / "run" / "metrics.jsonl")
    return summary([r["time/step_s"] for r in rows], [r["tokens"] for r in rows], torch.cuda.max_memory_allocated())


def run_trl(a, model: str) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    tokens: list[int] = []

    def length(completions, completion_ids, **kw):
        tokens.append(sum(len(c) for c in completion_ids))
        return [max(0.0, 1.0 - len(c) / a.max_new_tokens) for c in completion_ids]

    class Timer(TrainerCallback):
        def __init__(self):
            self.step_s, self.t = [], 0.0

        def on_step_begin(self, *x, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *x, **k):
            self.step_s.append(time.perf_counter() - self.t)

    timer = Timer()
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in prompts(256)])
    with tempfile.TemporaryDirectory() as tmp:
        args = GRPOConfig(output_dir=tmp, bf16=True, max_steps=a.steps, learning_rate=1e-6,
                          per_device_train_batch_size=a.prompts_per_step * a.group_size, num_generations=a.group_size,
                          max_completion_length=a.max_new_tokens, temperature=1.0, top_p=1.0, top_k=0, beta=0.0,
                          loss_type="grpo", gradient_checkpointing=False, use_vllm=False, report_to="none",
                          save_strategy="no", logging_steps=1, disable_tqdm=True,
                          model_init_kwargs={"dtype": torch.float32})
        GRPOTrainer(model=model, reward_funcs=length, args=args, train_dataset=data,
                    processing_class=AutoTokenizer.from_pretrained(model), callbacks=[timer]).train()
    return summary(timer.step_s, tokens, torch.cuda.max_memory_allocated())


def summary(step_s, tokens, peak_bytes) -> dict:
    timed = slice(1, None) if len(step_s) > 1 else slice(None)  # the first step warms up
    return {"s_per_step": statistics.median(step_s[timed]), "tokens_per_s": sum(tokens[timed]) / sum(step_s[timed]),
            "peak_gpu_mem_gb": peak_bytes / 2**30}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--prompts-per-step", type=int, default=4)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--worker", choices=["zoo", "trl"], help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(SKIP)
        print(json.dumps({"bench": "gpu_step", "skipped": "no CUDA device"}))
        return 0
    if a.worker:
        res = (run_zoo if a.worker == "zoo" else run_trl)(a, a.model_dir)
        print("RESULT " + json.dumps(res))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / "qwen2.5-0.5b-shaped")
        res = {}
        for who in ("zoo", "trl"):
            out = subprocess.run([sys.executable, __file__, "--worker", who, "--model-dir", str(model),
                                  *(argv if argv is not None else sys.argv[1:])], capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr[-3000:], file=sys.stderr)
                return out.returncode
            res[who] = json.loads([x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1][7:])
    for who, r in res.items():
        print(f"{who:<5} {r['s_per_step']:.2f} s/step  {r['tokens_per_s']:.0f} tok/s  {r['peak_gpu_mem_gb']:.1f} GB")
    print(json.dumps({"bench": "gpu_step", "gpu": torch.cuda.get_device_name(0), "steps": a.steps,
                      "rollouts_per_step": a.prompts_per_step * a.group_size, "max_new_tokens": a.max_new_tokens,
                      "zoo_s_per_step": round(res["zoo"]["s_per_step"], 3), "trl_s_per_step": round(res["trl"]["s_per_step"], 3),
                      "zoo_tokens_per_s": round(res["zoo"]["tokens_per_s"]), "trl_tokens_per_s": round(res["trl"]["tokens_per_s"]),
                      "zoo_peak_gpu_mem_gb": round(res["zoo"]["peak_gpu_mem_gb"], 2),
                      "trl_peak_gpu_mem_gb": round(res["trl"]["peak_gpu_mem_gb"], 2),
                      "speedup": round(res["trl"]["s_per_step"] / res["zoo"]["s_per_step"], 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
