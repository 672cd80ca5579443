import pytest
from grpo_zoo_hints.gates import LEAK, OVERLONG, PARSE, gate_hint, leaks_answer, parse_hint


def test_parse_takes_the_first_tagged_hint_and_normalizes_space():
    assert parse_hint("blah <hint> Try  factoring\nfirst. </hint> tail <hint>second</hint>") == "Try factoring first."
    assert parse_hint("<HINT>Case does not matter</Hint>") == "Case does not matter"


@pytest.mark.parametrize("text", ["no tags", "<hint>never closed", "<hint>   </hint>", "</hint>backwards<hint>", ""])
def test_parse_failures(text):
    assert parse_hint(text) is None
    assert gate_hint(text, "7", 60) == (None, PARSE)


def test_prefilled_tag_needs_only_the_closing_tag():
    assert parse_hint("Look at the signs.</hint>", prefilled=True) == "Look at the signs."
    assert parse_hint("Look at the signs.", prefilled=True) is None
    assert parse_hint("Sure! <hint>Look at the signs.</hint>", prefilled=True) == "Look at the signs."


def test_one_digit_answer_leaks_only_as_a_standalone_number():
    assert leaks_answer("So the answer is 7.", "7")
    assert leaks_answer("x = 7", "7")
    assert leaks_answer("It comes to 7.0 in the end", "7")
    assert leaks_answer("you should get seven", "7")
    # an unrelated digit, or the digit inside a larger number, is no leak
    assert not leaks_answer("Start with the 2 terms on the left.", "7")
    assert not leaks_answer("There are 17 apples and 27 pears.", "7")
    assert not leaks_answer("Multiply by 0.75 first.", "7")
    assert not leaks_answer("Think of what seventy means", "7")


def test_numeric_forms():
    assert leaks_answer("the total is 1,000", "1000")
    assert leaks_answer("it equals 1/2 of the cake", "0.5")
    assert leaks_answer("compute 5-3 first", "3")  # '-3' read as an operator
    assert leaks_answer("the answer: -4", "-4")
    assert not leaks_answer("use 4 terms", "-4")  # the sign is part of a negative answer
    assert not leaks_answer("one step at a time", "1")  # 'one' as a pronoun is not a leak


def test_text_answers():
    assert leaks_answer("The capital is Paris.", "Paris")
    assert not leaks_answer("Think about comparisons", "Paris")
    assert leaks_answer("pick (B) here", "B")
    assert not leaks_answer("Be careful with signs", "B")  # standalone token only
    assert not leaks_answer("a good start is the sum", "A")  # one or two letters: case-sensitive
    assert leaks_answer("so we get x^2+1", "x^2 + 1")  # spacing does not hide an expression
    assert not leaks_answer("anything", None)


def test_gate_order_and_reasons():
    assert gate_hint("<hint>Add the numbers in order.</hint>", "7", 60) == ("Add the numbers in order.", None)
    assert gate_hint("<hint>The result is 7.</hint>", "7", 60)[1] == LEAK
    assert gate_hint("<hint>Mention 2 things: signs and order.</hint>", "7", 60)[1] is None
    long = "<hint>" + "word " * 61 + "</hint>"
    assert gate_hint(long, "7", 60)[1] == OVERLONG
    assert gate_hint("<hint>" + "word " * 60 + "</hint>", "7", 60)[1] is None
