"""Word pools and sentence templates of the synthetic dialogues.

Every answer is drawn from a pool and its distractors from the same pool, so the text of a
question and its options says nothing about which option is right. Sentences are plain ASCII
without digits, so that every written token is one spoken word. No item or place word occurs
in the fixed sentences (scenario lines, greetings, templates), so a keyword is mentioned only
where a template puts it (``tests/test_data_lexicon`` checks this).
"""

from __future__ import annotations

# Things people mention; each template puts one of them in the ``{item}`` slot.
ITEMS = (
    "umbrella", "ladder", "blanket", "camera", "kettle", "bicycle", "hammer", "lantern",
    "guitar", "wallet", "basket", "pillow", "mirror", "candle", "helmet", "jacket",
    "bottle", "notebook", "ticket", "carpet", "radio", "teapot", "suitcase", "backpack",
    "compass", "bucket", "sweater", "painting", "blender", "toaster", "scarf", "shovel",
    "telescope", "violin", "hairbrush", "calendar", "stapler", "lampshade", "cushion", "vase",
    "trumpet", "magnet", "kite", "drum", "saddle", "anchor", "puzzle", "whistle",
)

# Where things are, for the "giving information" sentences and content-retrieval questions.
PLACES = (
    "garage", "hallway", "basement", "attic", "bedroom", "garden", "office", "cellar",
    "closet", "studio", "porch", "shed", "pantry", "balcony", "library", "laundry",
)

# Intent label (an option text) -> sentences that clearly carry that intent.
INTENTS: dict[str, tuple[str, ...]] = {
    "making a request": (
        "Could you please bring me the {item}?",
        "Can you pass me the {item}, please?",
        "Please hand me the {item} when you have a moment.",
    ),
    "complaining": (
        "I am really unhappy with the {item}.",
        "The {item} is broken again and it drives me crazy.",
        "This {item} has been nothing but trouble all week.",
    ),
    "thanking someone": (
        "Thank you so much for the {item}.",
        "Thanks a lot, the {item} is exactly what I wanted.",
        "I really appreciate you lending me the {item}.",
    ),
    "apologizing": (
        "I am so sorry, I lost your {item}.",
        "Forgive me, I forgot to bring the {item}.",
        "I apologize for breaking the {item}.",
    ),
    "making a suggestion": (
        "Maybe we should buy a new {item}.",
        "Why don't we take the {item} with us?",
        "How about using the {item} instead?",
    ),
    "refusing": (
        "No, you cannot borrow my {item}.",
        "I will not pay for that {item}.",
        "No way, I am not carrying the {item}.",
    ),
    "giving information": (
        "The {item} is in the {place}.",
        "I left the {item} in the {place}.",
        "You will find the {item} in the {place}.",
    ),
}
INFO_INTENT = "giving information"

# Relationship label (an option text) -> (lines of the first role, lines of the second role).
SCENARIOS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "a plumber and a customer": (
        ("The pipe under your sink needs a new seal.", "I can fix the leak in about an hour.",
         "Your water heater is quite old, I am afraid."),
        ("My kitchen sink has been dripping all week.", "How much will the repair cost?",
         "The bathroom floor is wet again this morning."),
    ),
    "a doctor and a patient": (
        ("Take these tablets twice a day after meals.", "Your blood pressure looks normal today.",
         "Let me listen to your chest for a moment."),
        ("I have had a bad cough for three days.", "My head hurts every time I stand up.",
         "Do I need to come back for another checkup?"),
    ),
    "a teacher and a student": (
        ("Please hand in your homework by Friday.", "Open your books at the chapter on fractions.",
         "Your essay was much better this time."),
        ("I did not understand the last exercise.", "Will this topic be on the exam?",
         "Can I sit closer to the blackboard?"),
    ),
    "a waiter and a diner": (
        ("Are you ready to order your main course?", "Today's special is grilled fish with rice.",
         "Would you like to see the dessert menu?"),
        ("I would like the soup of the day, please.", "Could we have the bill, please?",
         "Is there any sauce without garlic?"),
    ),
    "a mechanic and a car owner": (
        ("Your brakes are worn and need replacing.", "I changed the oil and checked the tires.",
         "The engine makes that noise because of a loose belt."),
        ("My car will not start on cold mornings.", "When can I pick up my car?",
         "There is a strange rattle when I drive fast."),
    ),
    "a hairdresser and a client": (
        ("How short would you like it at the back?", "I will wash your hair before the cut.",
         "This color will suit you very well."),
        ("Just a little off the ends, please.", "Can you make my fringe a bit shorter?",
         "I want to try a completely new style."),
    ),
    "a flight attendant and a passenger": (
        ("Please fasten your seat belt for landing.", "We will serve drinks after take off.",
         "Your bag must go in the overhead locker."),
        ("Could I change to a seat by the window?", "How long until we land?",
         "My ears hurt when the plane goes down."),
    ),
    "a librarian and a reader": (
        ("This book is due back in two weeks.", "The history section is on the second floor.",
         "You can renew your loan at the front desk."),
        ("I am looking for a book about old ships.", "Can I borrow more than five books?",
         "The printer on this floor is out of paper."),
    ),
}

# Opening lines without a keyword (a speaker's first turn may greet). They are filler: too rare
# to be an answer as often as the other intents, they are never asked about.
GREETINGS = (
    "Hello, it is nice to see you again.",
    "Good morning, how are you today?",
    "Hi there, I am glad you could come.",
)

ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six")

# Four voice types that every engine can realise: clearly separated in pitch and timbre.
VOICE_TYPES = ("deep male voice", "light male voice", "low female voice", "high female voice")


def lexicon(vocab_size: int | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (items, places) pools for a lexicon of ``vocab_size`` content words.

    ``None`` uses every word. Small lexicons (8-16 words, as tiny models need to learn the
    lexical tasks) keep about two thirds items and one third places, at least 4 of each
    (a question has 4 options from one pool).
    """
    if vocab_size is None:
        return ITEMS, PLACES
    if vocab_size < 8:
        raise ValueError(f"vocab_size must be at least 8 (4 items and 4 places), got {vocab_size}")
    if vocab_size > len(ITEMS) + len(PLACES):
        raise ValueError(f"vocab_size can be at most {len(ITEMS) + len(PLACES)}, got {vocab_size}")
    n_places = min(len(PLACES), max(4, vocab_size // 3))
    n_items = vocab_size - n_places
    if n_items > len(ITEMS):
        n_items, n_places = len(ITEMS), vocab_size - len(ITEMS)
    return ITEMS[:n_items], PLACES[:n_places]


__all__ = ["ITEMS", "PLACES", "INTENTS", "INFO_INTENT", "SCENARIOS", "GREETINGS",
           "ORDINALS", "NUMBER_WORDS", "VOICE_TYPES", "lexicon"]
