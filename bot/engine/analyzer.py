"""Text analysis shared by passages and questions.

The same analyzer runs at index time and at question time (the Anserini rule): whatever a passage
turns into, a question that uses the same words turns into the same terms.

Steps: Unicode normalisation (NFKC, curly quotes and apostrophes folded, dashes unified), tokens
(words, numbers, hashtags, dotted acronyms), possessive ``'s`` dropped, lowercase, accents of Latin
letters folded (café = cafe), English stopwords (including question words) dropped, Snowball
stemming. docs/ENGINE.md ("Stemming and accents") has the measurements behind the last two.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import snowballstemmer

# Curly quotes, primes and the other apostrophes people type, folded to ASCII.
_FOLD = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u02bc": "'",
        "\uff07": "'",
        "`": "'",
        "\u00b4": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u00a0": " ",
    }
)
# Zero-width and bidi control characters carry no meaning for search.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")

# A token is a hashtag, a dotted acronym (U.S., F.), or a run of letters/digits with inner
# apostrophes (doesn't, Musk's). Hyphens and other punctuation split words: "meme-worthy" is two.
_TOKEN = re.compile(r"#\w+|(?:[^\W\d_]\.){2,}|[^\W_]+(?:'[^\W_]+)*", re.UNICODE)
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")

# Latin letters that carry their mark inside the letter, so NFKD leaves them whole.
_LATIN_LETTERS = str.maketrans(
    {"ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "ß": "ss", "ı": "i"}
)

# English function words, plus the words that shape a question rather than say what it is about.
STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
    don't down during each few for from further had hadn't has hasn't have haven't having he he'd
    he'll he's her here here's hers herself him himself his i i'd i'll i'm i've if in into is isn't
    it it's its itself let's me more most mustn't my myself no nor not of off on once only or other
    ought our ours ourselves out over own same shan't she she'd she'll she's should shouldn't so
    some such than that that's the their theirs them themselves then there there's these they they'd
    they'll they're they've this those through to too under until up very was wasn't we we'd we'll
    we're we've were weren't what what's when when's where where's which while who who's whom why
    why's with won't would wouldn't you you'd you'll you're you've your yours yourself yourselves
    also just s t will shall may might must us ever anything something nothing thing things how
    how's whose whats whos hows much many tell explain describe according article now right still
    even yet already really actually exactly whole kind sort lot lots stuff gonna wanna please ok
    okay yes yeah say says said saying get gets got getting go goes going went gone come comes came
    coming make makes made making let lets want wants wanted think know knew
    """.split()
)

# A Snowball stemmer keeps its working state on the instance, so two threads sharing one get
# each other's words mid-stem (wrong stems, IndexError). Index builds run in worker threads: each
# thread gets its own stemmer, made on first use.
_per_thread = threading.local()


class _Stemmer(Protocol):
    def stemWord(self, word: str) -> str: ...  # snowballstemmer's name


def _thread_stemmer() -> _Stemmer:
    stemmer: _Stemmer | None = getattr(_per_thread, "stemmer", None)
    if stemmer is None:
        stemmer = _per_thread.stemmer = snowballstemmer.stemmer("english")
    return stemmer


# The cache itself is thread-safe; it can only keep a right stem since no stemmer is shared.
@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    return _thread_stemmer().stemWord(word)


def normalize(text: str) -> str:
    """Fold the characters that vary between typists; the text keeps its case and punctuation."""
    text = unicodedata.normalize("NFKC", text).translate(_FOLD)
    return _INVISIBLE.sub("", text)


def normalize_in_place(text: str) -> str | None:
    """``normalize(text)`` when normalising keeps every character at its offset (no compatibility
    or invisible character), so a slice of it is the normalisation of the same slice of ``text``;
    else None. Lets a build normalise a passage once instead of sentence by sentence."""
    if text.isascii():  # of the folded characters only the backtick is ASCII; translate is slow
        return text.replace("`", "'") if "`" in text else text
    if not unicodedata.is_normalized("NFKC", text) or _INVISIBLE.search(text):
        return None
    return text.translate(_FOLD)


def fold_accents(word: str) -> str:
    """``word`` (lowercase) without the accents of its Latin letters: "café" -> "cafe".

    People type names and loanwords with or without accents (a question's "Herve" for the text's
    "Hervé"). Only marks on Latin letters go: in other scripts a combining mark can be part of the
    letter (Devanagari vowel signs, Japanese dakuten, Cyrillic й), and dropping it would merge
    different words."""
    if word.isascii():
        return word
    kept: list[str] = []
    latin_base = False
    for char in unicodedata.normalize("NFKD", word):
        if unicodedata.combining(char):
            if not latin_base:
                kept.append(char)
            continue
        latin_base = unicodedata.name(char, "").startswith("LATIN")
        kept.append(char)
    return unicodedata.normalize("NFC", "".join(kept)).translate(_LATIN_LETTERS)


def _words(text: str) -> list[str]:
    """Surface words of already-normalised text (before stopwords and stemming)."""
    out: list[str] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token.startswith("#"):
            # A hashtag is findable by its whole tag and by its camel-case parts:
            # "#TrumpVsMusk" -> "#trumpvsmusk", "trump", "vs", "musk".
            out.append("#" + fold_accents(token[1:].lower()))
            out.extend(fold_accents(part.lower()) for part in _CAMEL.findall(token[1:]))
            continue
        if token.endswith(".") and "." in token[:-1]:
            out.append("." + token.replace(".", "").lower())  # "U.S." -> ".us", kept apart from "us"
            continue
        token = fold_accents(token.lower())
        if token.endswith("'s"):
            token = token[:-2]
        out.append(token)
    return out


def term_of(word: str) -> str | None:
    """The index term for one surface word, or None for a stopword."""
    if word.startswith("#"):
        return stem(word[1:])  # "#RocketManReturns" and "rocketmanreturns" meet at one term
    if word.startswith("."):
        return word[1:] + "."  # an acronym keeps a mark so "U.S." never meets the stopword "us"
    if word in STOPWORDS or word.replace("'", "") in STOPWORDS:
        return None
    if word.isdigit():
        return word  # numbers are kept as they are: 2022 is not stemmed
    return stem(word.replace("'", ""))


@dataclass(frozen=True, slots=True)
class Token:
    """One token of normalised text: what every later step reads (index, questions, highlights)."""

    surface: str  # as written, after normalize(): "Musk's", "#TrumpVsMusk", "U.S."
    start: int  # offsets into the normalised text
    end: int
    terms: tuple[tuple[str, str], ...]  # (index term, prefix) for each word it indexes as; () = stopword


@lru_cache(maxsize=1 << 18)
def token_terms(surface: str) -> tuple[tuple[str, str], ...]:
    """(term, five-letter prefix) for each indexable word of one token (a hashtag gives several).

    The one place a token becomes terms: cached per surface form, since a corpus repeats them."""
    pairs = []
    for word in _words(surface):
        term = term_of(word)
        if term:
            pairs.append((term, prefix_of(word, term)))
    return tuple(pairs)


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text`` (normalised first), with offsets and terms."""
    return [
        Token(m.group(), m.start(), m.end(), token_terms(m.group())) for m in _TOKEN.finditer(normalize(text))
    ]


def analyze(text: str) -> list[str]:
    """Index terms of a passage or a question, in order, repeats kept (BM25 counts them)."""
    return [term for surface in _TOKEN.findall(normalize(text)) for term, _ in token_terms(surface)]


def analyze_pairs(text: str) -> list[tuple[str, str]]:
    """(term, prefix) for each indexable word: its index term and its five-letter prefix.

    Snowball keeps "compete" and "competition", "respond" and "response" apart; their prefixes
    meet. The decision in ``answers.py`` counts a prefix match as weaker evidence that a word is
    there; prefixes are not a ranking field (docs/ENGINE.md says why).
    """
    return [pair for surface in _TOKEN.findall(normalize(text)) for pair in token_terms(surface)]


def surface_terms(text: str) -> list[tuple[int, int, str]]:
    """(start, end, term) for every indexable word of ``text``: used to highlight query words.

    Offsets point into ``text`` itself; normalisation keeps lengths for everything but rare
    compatibility characters, so offsets are taken from the normalised copy only when equal length.
    A hashtag yields several words; its first (whole-tag) term is what highlights it.
    """
    norm = normalize(text)
    if len(norm) != len(text):
        norm = text
    return [
        (m.start(), m.end(), pairs[0][0]) for m in _TOKEN.finditer(norm) if (pairs := token_terms(m.group()))
    ]


PREFIX_LENGTH = 5


def prefix_of(word: str, term: str, length: int = PREFIX_LENGTH) -> str:
    """The prefix-field term of a surface word whose index term is ``term``."""
    return term if word[0] in "#." or word.isdigit() else word.replace("'", "")[:length]
