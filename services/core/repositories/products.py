"""Products sold for Telegram Stars."""

from .base import Repository


class ProductRepository(Repository):
    pass
