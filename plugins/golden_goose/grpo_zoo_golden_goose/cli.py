"""``grpo-zoo goose synthesize | filter | show``."""
from __future__ import annotations

import argparse
import json
import sys

from .filter import FilterConfig, run_filter, stored_format
from .format import format_item
from .sources import SourceError
from .store import StoreError, load_items
from .synthesize import SynthesisError, config_from_args, synthesize

ERRORS = (SynthesisError, SourceError, StoreError, ValueError, RuntimeError, FileNotFoundError)


def _fail(exc) -> int:
    print(f"grpo-zoo goose: error: {exc}", file=sys.stderr)
    return 2


def cmd_synthesize(args) -> int:
    try:
        cfg = config_from_args(args)
        synthesize(cfg, progress=not args.no_progress, overwrite=args.overwrite)
    except KeyboardInterrupt:
        print(f"\ninterrupted: progress is kept in {args.out}/records.jsonl; rerun the same command to continue", file=sys.stderr)
        return 130
    except ERRORS as exc:
        return _fail(exc)
    return 0


def cmd_filter(args) -> int:
    cfg = FilterConfig(
        dataset=args.dataset, out=args.out, model=args.model, k=args.k, limit=args.limit,
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
        batch_size=args.batch_size, seed=args.seed, system_prompt=args.system_prompt, options=args.options,
        threads=args.threads,
    )
    try:
        result = run_filter(cfg, progress=not args.no_progress)
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command to continue", file=sys.stderr)
        return 130
    except ERRORS as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(result))
    return 0


def cmd_show(args) -> int:
    try:
        items = load_items(args.dataset)
    except ERRORS as exc:
        return _fail(exc)
    fmt = stored_format(args.dataset)
    for it in items[args.start : args.start + args.n]:
        row = format_item(it, fmt["options"], fmt["seed"], fmt["distractor_pick"], fmt["answer_format"])
        print(f"=== {row['id']}  (answer {row['letter']})")
        print(row["prompt"])
        print()
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("goose", help="Golden Goose: multiple-choice tasks synthesized from unverifiable text")
    gs = p.add_subparsers(dest="goose_command", required=True)

    s = gs.add_parser(
        "synthesize", help="make fill-in-the-middle multiple-choice tasks from text (resumable)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    s.add_argument("--input", required=True, help="stdlib:code, stdlib:docstrings, a file, a folder, a saved dataset, or hf:NAME")
    s.add_argument("--out", required=True, help="output folder (rerun with the same --out to resume)")
    s.add_argument("--domain", default="auto", choices=["auto", "math", "code", "passage"])
    s.add_argument("--generator", default="heuristic", choices=["heuristic", "llm"],
                   help="llm = the paper's method; heuristic = offline baseline with same-document distractors")
    s.add_argument("--model", help="transformers model for --generator llm (e.g. smollm2-135m or a hub id)")
    s.add_argument("--endpoint", help="OpenAI-compatible base URL for --generator llm, e.g. http://127.0.0.1:8000/v1")
    s.add_argument("--endpoint-model", dest="endpoint_model", help="model name sent to the endpoint")
    s.add_argument("--api", default="chat", choices=["chat", "completions"])
    s.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=1024)
    s.add_argument("--temperature", type=float, default=0.0, help="generator temperature (0 = greedy)")
    s.add_argument("--limit", type=int, help="use at most N sources (a seeded sample)")
    s.add_argument("--per-source", dest="per_source", type=int, default=1, help="items per source")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--options", type=int, default=9, help="options per task (true span + options-1 distractors)")
    s.add_argument("--distractors", type=int, default=10, help="distractors generated per item")
    s.add_argument("--distractor-pick", dest="distractor_pick", default="random", choices=["random", "closest_length"])
    s.add_argument("--answer-format", dest="answer_format", default="tag", choices=["tag", "plain"])
    s.add_argument("--min-units", dest="min_units", type=int, help="fewest lines/sentences per span (heuristic)")
    s.add_argument("--max-units", dest="max_units", type=int, help="most lines/sentences per span (heuristic)")
    s.add_argument("--min-chars", dest="min_chars", type=int, default=20)
    s.add_argument("--max-chars", dest="max_chars", type=int, default=300)
    s.add_argument("--min-length-ratio", dest="min_length_ratio", type=float, default=0.5,
                   help="drop distractors shorter than this times the answer")
    s.add_argument("--max-length-ratio", dest="max_length_ratio", type=float, default=2.0,
                   help="drop distractors longer than this times the answer")
    s.add_argument("--same-document-only", dest="same_document_only", action="store_true", default=None,
                   help="heuristic: distractors only from the item's own document (short documents are rejected)")
    s.add_argument("--context-chars", dest="context_chars", type=int, default=600, help="context each side of [MASK]; 0 = all")
    s.add_argument("--max-source-chars", dest="max_source_chars", type=int, default=3000, help="window given to the LLM")
    s.add_argument("--no-shuffle", dest="shuffle", action="store_false", help="take sources in input order")
    s.add_argument("--text-column", dest="text_column")
    s.add_argument("--question-column", dest="question_column")
    s.add_argument("--solution-column", dest="solution_column")
    s.add_argument("--id-column", dest="id_column")
    s.add_argument("--overwrite", action="store_true", help="start over instead of resuming")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_synthesize)

    f = gs.add_parser(
        "filter", help="drop tasks the policy solves in all k rollouts; report the effective share",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    f.add_argument("--dataset", required=True, help="a folder written by goose synthesize")
    f.add_argument("--model", default="smollm2-135m")
    f.add_argument("--k", type=int, default=16)
    f.add_argument("--out", help="folder for the kept tasks (omit to only measure)")
    f.add_argument("--limit", type=int, help="only a seeded sample of N tasks")
    f.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=32)
    f.add_argument("--temperature", type=float, default=1.0)
    f.add_argument("--top-p", dest="top_p", type=float, default=1.0)
    f.add_argument("--batch-size", dest="batch_size", type=int, default=64)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--options", type=int, help="re-format with this many options (default: as synthesized)")
    f.add_argument("--system-prompt", dest="system_prompt")
    f.add_argument("--threads", type=int, default=0)
    f.add_argument("--json", action="store_true", help="print the stats as one JSON line")
    f.add_argument("--no-progress", action="store_true")
    f.set_defaults(func=cmd_filter)

    w = gs.add_parser("show", help="print tasks of a synthesized data set")
    w.add_argument("dataset")
    w.add_argument("-n", type=int, default=3)
    w.add_argument("--start", type=int, default=0)
    w.set_defaults(func=cmd_show)
