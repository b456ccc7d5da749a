"""The analyzer: the same terms for a passage and for a question that uses the same words."""

from bot.engine.analyzer import analyze, analyze_pairs, normalize, surface_terms


def test_curly_and_straight_apostrophes_meet() -> None:
    assert analyze("Musk’s pet peeves") == analyze("Musk's pet peeves") == ["musk", "pet", "peev"]


def test_curly_double_quotes_are_folded() -> None:
    assert normalize("“free speech,”") == '"free speech,"'


def test_possessive_s_is_dropped_but_contractions_are_stopwords() -> None:
    assert analyze("Trump’s base") == ["trump", "base"]
    assert analyze("doesn’t know which planet he’s on") == ["planet"]


def test_question_words_and_function_words_are_stopwords() -> None:
    assert analyze("Who is the CEO of what, when and how?") == ["ceo"]


def test_stemming_joins_inflections() -> None:
    assert analyze("trended") == analyze("trending") == analyze("trends")
    assert analyze("amplifying") == analyze("amplify")


def test_numbers_are_kept_whole() -> None:
    assert analyze("in 2016 and 2022") == ["2016", "2022"]


def test_hashtags_are_findable_by_their_bare_tag_and_their_words() -> None:
    terms = analyze("#TrumpVsMusk")
    assert analyze("trumpvsmusk")[0] in terms
    assert {"trump", "musk"} <= set(terms)
    assert analyze("#RocketManReturns")[0] == analyze("rocketmanreturns")[0]


def test_dotted_acronyms_are_not_the_stopword_us() -> None:
    assert analyze("the U.S. withdrew") == ["us.", "withdrew"]
    assert analyze("tell us") == []


def test_hyphenated_words_split() -> None:
    assert analyze("left-leaning meme-worthy") == ["left", "lean", "meme", "worthi"]


def test_invisible_characters_do_not_split_words() -> None:
    assert analyze("Mu\u200bsk") == analyze("Musk")


def test_prefixes_join_variants_the_stemmer_keeps_apart() -> None:
    assert analyze("competing") != analyze("competition")
    [(_, competing)] = analyze_pairs("competing")
    [(_, competition)] = analyze_pairs("competition")
    assert competing == competition == "compe"


def test_surface_terms_point_at_the_words_in_the_original_text() -> None:
    text = "Musk’s “X” trended"
    spans = surface_terms(text)
    assert [(text[s:e], t) for s, e, t in spans] == [("Musk’s", "musk"), ("X", "x"), ("trended", "trend")]


def test_accents_of_latin_letters_are_folded() -> None:
    # A question typed without accents meets the document's accented word, and the reverse.
    assert analyze("café") == analyze("cafe") == ["cafe"]
    assert analyze("Hervé of Fécamp") == analyze("Herve of Fecamp")
    assert analyze("Saarbrücken Contrecœur straße") == analyze("Saarbrucken Contrecoeur strasse")


def test_marks_that_are_part_of_a_letter_outside_latin_are_kept() -> None:
    # Japanese が is not か, Cyrillic й is not и: folding them would merge different words.
    assert analyze("が") != analyze("か")
    assert analyze("й") != analyze("и")


def test_folding_keeps_offsets_for_highlighting() -> None:
    text = "Our café serves espresso"
    spans = surface_terms(text)
    assert [(text[s:e], t) for s, e, t in spans] == [
        ("café", "cafe"),
        ("serves", "serv"),
        ("espresso", "espresso"),
    ]


def test_stemming_still_joins_serve_and_served() -> None:
    assert analyze("serve") == analyze("served") == analyze("serves")
