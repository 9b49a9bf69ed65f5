"""One rating vocabulary for every site: g (general), s (sensitive), q (questionable), e (explicit).

Sites spell ratings differently: Danbooru with those letters, Gelbooru and Safebooru with the
words, Moebooru with s/q/e where `s` means *safe*. `safe` is the rating boorus used before they
split it into general and sensitive (Danbooru and Gelbooru in 2022); it covers both, so it is read
as `s`: a source asking for `["g"]` alone gets no `safe` post, which may be suggestive. A rating
a site sends that is none of these is not guessed at: the post is skipped and counted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from crawler.sites.base import Site, WebSourceBase

RATINGS = ("g", "s", "q", "e")
LETTERS: Mapping[str, str] = {"g": "g", "s": "s", "q": "q", "e": "e"}  # Danbooru
WORDS: Mapping[str, str] = {  # Gelbooru, Safebooru
    "general": "g",
    "safe": "s",
    "sensitive": "s",
    "questionable": "q",
    "explicit": "e",
}
MOEBOORU: Mapping[str, str] = {"s": "s", "q": "q", "e": "e"}  # s = safe, the rating before the split


@dataclasses.dataclass
class RatedSourceBase(WebSourceBase):
    """Keys of a site whose posts carry a rating: which ratings are kept (filtered on each post)."""

    ratings: list[str] = dataclasses.field(default_factory=lambda: ["g", "s"])

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.ratings or any(r not in RATINGS for r in self.ratings):
            raise ValueError(f"ratings must be a non-empty list of {', '.join(RATINGS)}, got {self.ratings}")


def rating_of(value: object, names: Mapping[str, str]) -> str | None:
    """The site's rating in the one vocabulary; None for a value the site's names do not cover."""
    return names.get(value.strip().lower()) if isinstance(value, str) else None


def keep_rating(site: Site, value: object) -> str | None:
    """The post's rating when its source keeps it; None (counted as a site skip) otherwise."""
    rating = rating_of(value, site.rating_names)
    if rating is None:
        site.counts["rating_unknown_skipped"] += 1
    elif rating not in site.source.ratings:
        site.counts[f"rating_{rating}_skipped"] += 1
    else:
        return rating
    return None
