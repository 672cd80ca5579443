import pytest

from grpo_zoo_golden_goose.synthesize import SynthesisConfig, synthesize

# A few standard-library modules: enough sources for distractor pools, fast to read.
SMALL_CODE = "stdlib:code:json,textwrap,shlex,heapq,fractions,string,calendar,csv,bisect,base64,difflib,sched"
SMALL_DOCS = "stdlib:docstrings:json,textwrap,shlex,heapq,fractions,string,calendar,csv,difflib,argparse"


@pytest.fixture(scope="session")
def small_code():
    return SMALL_CODE


@pytest.fixture(scope="session")
def code_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("goose") / "code"
    summary = synthesize(SynthesisConfig(input=SMALL_CODE, out=str(out), context_chars=200), progress=False, log=lambda *_: None)
    return out, summary


@pytest.fixture(scope="session")
def docs_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("goose") / "docs"
    summary = synthesize(SynthesisConfig(input=SMALL_DOCS, out=str(out), limit=40), progress=False, log=lambda *_: None)
    return out, summary
