"""The course world: seeded generators for every dataset the lessons train on.

The world is small on purpose. A 1M-parameter model learns it in minutes on a laptop, and every
answer in it can be checked by a program, so each lesson can measure what its training did:
- stories about animals, whose endings are happy, sad or plain (reward models learn to prefer happy);
- arithmetic on small numbers (checkable: the answer is a number);
- facts: what an animal says, what colour a thing is (checkable: one word).

Every generator takes a `random.Random`, never the global one, so a seed fixes the whole world.
"""
import re
from string import Formatter

NAMES = ["Max", "Emma", "Sue", "Tom", "Lily", "Ben", "Mia", "Sam", "Anna", "Leo"]
ADJECTIVES = ["red", "blue", "little", "big", "happy", "small", "green", "brave", "shy", "kind"]
ANIMALS = ["cat", "dog", "rabbit", "bird", "fox", "bear", "duck", "frog", "mouse", "pig"]
PLACES = ["garden", "park", "forest", "house", "river", "hill", "farm", "yard"]
THINGS = ["ball", "hat", "box", "kite", "book", "cake", "flower", "toy", "shell", "key"]

SOUNDS = {
    "cat": "meow", "dog": "woof", "duck": "quack", "cow": "moo", "frog": "ribbit", "bird": "tweet",
    "sheep": "baa", "pig": "oink", "owl": "hoot", "bee": "buzz", "lion": "roar", "horse": "neigh",
}
COLOURS = {
    "sky": "blue", "grass": "green", "sun": "yellow", "snow": "white", "apple": "red",
    "banana": "yellow", "leaf": "green", "coal": "black", "milk": "white", "carrot": "orange",
}

HAPPY_ENDINGS = [
    "{name} was very happy and shared the {thing} with a friend. The end.",
    "{name} and a friend played with the {thing} all day and laughed. The end.",
]
SAD_ENDINGS = [
    "{name} lost the {thing} and cried all day. The end.",
    "The {thing} broke, and {name} went home sad. The end.",
]
PLAIN_ENDINGS = [
    "Then {name} went home to sleep. The end.",
    "{name} put the {thing} in a box and went home. The end.",
]
MIDDLES = [
    "{name} showed the {thing} to a {other}.",
    "The {thing} was old and very pretty.",
    "A {other} came to look at the {thing}.",
    "{name} wanted to keep the {thing}.",
]
# In the world's stories a quarter end happily: the share that reward modeling and RL later raise.
ENDING_WEIGHTS = {"happy": 0.25, "sad": 0.35, "plain": 0.40}
ENDINGS = {"happy": HAPPY_ENDINGS, "sad": SAD_ENDINGS, "plain": PLAIN_ENDINGS}

SYSTEM_PROMPT = "You are a helpful assistant."


# ---------------------------------------------------------------- stories
def story_hero(rng):
    """The cast of one story: who, what they are like, where they play, what they find."""
    return {
        "name": rng.choice(NAMES), "adj": rng.choice(ADJECTIVES), "animal": rng.choice(ANIMALS),
        "place": rng.choice(PLACES), "thing": rng.choice(THINGS), "other": rng.choice(ANIMALS),
    }


def story_body(rng, hero):
    """A story without its last sentence."""
    return (
        f"Once upon a time, there was a {hero['adj']} {hero['animal']} named {hero['name']}. "
        f"{hero['name']} liked to play in the {hero['place']}. "
        f"One day, {hero['name']} found a {hero['thing']} near the {hero['place']}. "
        + rng.choice(MIDDLES).format(**hero)
    )


def story_ending(rng, hero, kind):
    return rng.choice(ENDINGS[kind]).format(**hero)


def random_ending_kind(rng):
    return rng.choices(list(ENDING_WEIGHTS), weights=list(ENDING_WEIGHTS.values()))[0]


def story(rng, hero=None, ending=None):
    """A whole story; the ending kind is drawn with ENDING_WEIGHTS unless given."""
    hero = hero or story_hero(rng)
    return story_body(rng, hero) + " " + story_ending(rng, hero, ending or random_ending_kind(rng))


def story_request(hero):
    return f"Tell me a story about a {hero['adj']} {hero['animal']} named {hero['name']}."


def ending_kind(text):
    """Which kind of ending a story has (happy, sad, plain), or None when it ends in none of them."""
    for kind, templates in ENDINGS.items():
        if any(_ending_regex(t).search(text) for t in templates):
            return kind
    return None


def _ending_regex(template):
    """The template as a regex anchored at the end of the text, each {placeholder} matching one word."""
    parts = [re.escape(literal) + (r"\w+" if field else "") for literal, field, _, _ in Formatter().parse(template)]
    return re.compile("".join(parts) + r"\s*$")


# ---------------------------------------------------------------- arithmetic
OPERATORS = ["+", "-"]


def arithmetic_problem(rng, max_operand=9):
    """(a, op, b) with a non-negative result."""
    op = rng.choice(OPERATORS)
    a, b = rng.randint(0, max_operand), rng.randint(0, max_operand)
    if op == "-" and b > a:
        a, b = b, a
    return a, op, b


def solve(a, op, b):
    return a + b if op == "+" else a - b


def equation(a, op, b):
    return f"{a}{op}{b}={solve(a, op, b)}"


def all_small_problems():
    """Every single-digit problem of the world: 100 sums and 55 differences."""
    return [(a, "+", b) for a in range(10) for b in range(10)] + [
        (a, "-", b) for a in range(10) for b in range(a + 1)
    ]


def arithmetic_line(rng):
    """A line of equations; half the lines use single digits, which a tiny model masters first."""
    max_operand = 9 if rng.random() < 0.5 else 20
    return " ".join(equation(*arithmetic_problem(rng, max_operand)) for _ in range(rng.randint(4, 8)))


# ---------------------------------------------------------------- facts
def fact_sentence(rng):
    if rng.random() < 0.6:
        animal = rng.choice(list(SOUNDS))
        return rng.choice(["A {a} says {s}.", "The {a} says {s}.", "Every {a} says {s}."]).format(
            a=animal, s=SOUNDS[animal])
    thing = rng.choice(list(COLOURS))
    return rng.choice(["The {t} is {c}.", "A {t} is {c}."]).format(t=thing, c=COLOURS[thing])


def facts_paragraph(rng):
    return " ".join(fact_sentence(rng) for _ in range(rng.randint(3, 6)))


# ---------------------------------------------------------------- the pretraining corpus
def corpus(rng, size_chars):
    """Documents until `size_chars` characters: stories 35%, arithmetic lines 50%, facts 15% of the
    documents, which makes about 40%, 50% and 10% of the tokens (a story is long, a line of sums short)."""
    docs, total = [], 0
    while total < size_chars:
        roll = rng.random()
        doc = story(rng) if roll < 0.35 else arithmetic_line(rng) if roll < 0.85 else facts_paragraph(rng)
        docs.append(doc)
        total += len(doc) + 1
    return docs


# ---------------------------------------------------------------- chat: questions with checkable answers
def math_question(a, op, b, rng):
    template = rng.choice(["What is {e}?", "Compute {e}.", "{e}=?", "Please solve {e}."])
    return template.format(e=f"{a}{op}{b}")


def sound_question(animal, rng):
    return rng.choice(["What does a {a} say?", "What sound does a {a} make?"]).format(a=animal)


def colour_question(thing, rng):
    return rng.choice(["What colour is the {t}?", "What color is a {t}?"]).format(t=thing)


def chat(user, assistant, rng, system_share=0.5):
    """A conversation as a list of messages; half of them carry a system prompt."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}] if rng.random() < system_share else []
    messages.append({"role": "user", "content": user})
    if assistant is not None:
        messages.append({"role": "assistant", "content": assistant})
    return messages


def math_example(rng, problem):
    a, op, b = problem
    return {"task": "math", "question": math_question(a, op, b, rng),
            "reply": equation(a, op, b), "answer": str(solve(a, op, b))}


def fact_example(rng, subject):
    if subject in SOUNDS:
        return {"task": "fact", "question": sound_question(subject, rng),
                "reply": f"A {subject} says {SOUNDS[subject]}.", "answer": SOUNDS[subject]}
    return {"task": "fact", "question": colour_question(subject, rng),
            "reply": f"The {subject} is {COLOURS[subject]}.", "answer": COLOURS[subject]}


def story_example(rng, ending=None):
    hero = story_hero(rng)
    return {"task": "story", "question": story_request(hero), "reply": story(rng, hero, ending), "answer": ""}


def split_subjects(rng, items, test_share):
    """Split items into (train, test) with a seeded shuffle: the test items never appear in chat training."""
    items = list(items)
    rng.shuffle(items)
    n_test = max(1, round(len(items) * test_share))
    return items[n_test:], items[:n_test]
