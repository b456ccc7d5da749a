"""articlebot: answers questions about a news article by quoting its best passages."""

__version__ = "0.1.0"
