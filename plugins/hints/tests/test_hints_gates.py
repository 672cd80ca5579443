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
    assert not leaks_answer("compute 5-3 first", "3")  # '-3' is an operand here, no statement of 3
    assert leaks_answer("x equals 5-3, which is 3", "3")
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


# HiLL's rule for answers of two characters or fewer: a mention is a leak only where it is stated as the result.
@pytest.mark.parametrize("hint, answer", [
    ("Consider 2 variables and set up an equation.", "2"),  # HiLL's own example of a false positive
    ("Expand x^2 first.", "2"),
    ("Do step 1, then step 2, then step 3.", "3"),
    ("A good start is to list the terms.", "A"),
    ("Note: 2 terms cancel.", "2"),
    ("There are 2 cases to check.", "2"),
    ("Add 2 to 5 before dividing.", "5"),
    ("Keep the 12 in mind but subtract.", "12"),
    ("Think of minus signs carefully.", "-7"),
    ("Split the group in two halves.", "2"),
    ("Read the third line again.", "3"),
])
def test_short_answers_mentioned_without_stating_them_do_not_leak(hint, answer):
    assert not leaks_answer(hint, answer)


@pytest.mark.parametrize("hint, answer", [
    ("x = 2", "2"),
    ("so it is 2.", "2"),
    ("The answer: 2", "2"),
    ("answer is (B)", "B"),
    ("You should get 12 at the end.", "12"),
    ("2 is the answer.", "2"),
    ("It all comes to \\boxed{7}.", "7"),
    ("It adds up to 9 in total", "9"),
    ("7", "7"),
    ("the answer is one", "1"),
])
def test_short_answers_stated_as_the_result_leak(hint, answer):
    assert leaks_answer(hint, answer)


# Equivalent forms: LaTeX fractions, number words, sign words.
@pytest.mark.parametrize("hint, answer", [
    ("The share is 1/2 of the cake.", "\\frac{1}{2}"),
    ("The share is \\frac{1}{2} of the cake.", "1/2"),
    ("The share is \\dfrac12 of the cake.", "0.5"),
    ("Take one half of the cake.", "1/2"),
    ("Take a half of the cake.", "0.5"),
    ("three quarters of it remain", "3/4"),
    ("The result is minus seven.", "-7"),
    ("The result is negative 7.", "-7"),
    ("You get twenty-one in the end.", "21"),
    ("It comes to three hundred and five.", "305"),
    ("so x = $-\\frac{3}{4}$", "-0.75"),
    ("the value is \u22127", "-7"),  # Unicode minus
])
def test_equivalent_forms_leak(hint, answer):
    assert leaks_answer(hint, answer)


def test_ordinals_and_the_pronoun_one_are_not_numbers():
    assert not leaks_answer("The third step is where it breaks.", "1/3")
    assert not leaks_answer("One way is to add first.", "1")
    assert not leaks_answer("Think of a quarter turn.", "0.5")
