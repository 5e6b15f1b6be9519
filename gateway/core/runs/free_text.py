"""Species and product type named in the ERP's free text (a run's or a product's Description)."""

from __future__ import annotations

import re
from typing import Final

# Whole words: no letter directly before or after (digits and punctuation do separate, so
# "2x120g Salmon" and "SALMON_FILLET" work; "Codling" is not "cod").
_WORD_START: Final = r"(?<![^\W\d_])"
_WORD_END: Final = r"(?![^\W\d_])"
# Between the words of a multi-word name: "sea bass", "sea-bass", "seabass".
_JOIN: Final = r"[\s-]*"

# (pattern, normalised name). At any position the first alternative that matches wins, so
# multi-word names come first and beat the single word they contain ("smoked salmon" is not
# "salmon"). The central pipeline parses 12 species from Description
# (docs/reference/production-pipeline.md, "Validate"); halibut, monkfish, sole, herring and
# dogfish are common UK whitefish/flatfish names added here.
_SPECIES: Final[tuple[tuple[str, str], ...]] = (
    (rf"alaska(?:n)?{_JOIN}poll[oa]ck", "pollock"),
    # UK fish-and-chip trade name for spurdog/huss: not a salmon.
    (rf"rock{_JOIN}salmon", "dogfish"),
    (rf"salmon{_JOIN}trout", "trout"),
    (rf"sea{_JOIN}trout", "trout"),
    (rf"sea{_JOIN}bass", "sea bass"),
    (rf"sea{_JOIN}bream", "sea bream"),
    (rf"(?:lemon|dover){_JOIN}sole", "sole"),
    ("salmon", "salmon"),
    ("cod", "cod"),
    ("haddock", "haddock"),
    ("hake", "hake"),
    ("mackerel", "mackerel"),
    ("tuna", "tuna"),
    ("plaice", "plaice"),
    ("poll[oa]ck", "pollock"),
    ("bass", "sea bass"),
    ("bream", "sea bream"),
    ("trout", "trout"),
    # Coley is saithe (Pollachius virens); kept apart from pollock, as the factory sells both.
    ("coley|saithe", "coley"),
    ("halibut", "halibut"),
    ("monkfish", "monkfish"),
    ("sole", "sole"),
    ("herring", "herring"),
    ("dogfish|huss", "dogfish"),
)
_SPECIES_RE: Final = re.compile(
    _WORD_START + "(?:" + "|".join(f"({p})" for p, _ in _SPECIES) + ")" + _WORD_END,
    re.IGNORECASE,
)

# Product types in priority ranks. The seed pipeline gives smoked/breaded priority over the cut
# ("smoked/breaded product type priority", docs/reference/production-pipeline.md "Tests"): process
# beats coating beats formed product beats cut beats whole. Within a rank the last word mentioned
# wins, as English puts the head noun last ("Cod Loin Portions" -> portion).
_PRODUCT_TYPE_RANKS: Final[tuple[tuple[tuple[str, str], ...], ...]] = (
    (("smoked", "smoked"),),
    (
        (rf"breaded|(?:bread{_JOIN})?crumb(?:ed|s)?|panko", "breaded"),
        ("battered|batter|tempura", "battered"),
    ),
    (
        (rf"fish{_JOIN}cakes?", "fish cake"),
        ("goujons?|goujonettes?", "goujon"),
    ),
    (
        ("fill?ets?", "fillet"),
        ("loins?", "loin"),
        ("portions?", "portion"),
        ("steaks?", "steak"),
    ),
    (("whole", "whole"),),
)
_PRODUCT_TYPE_RES: Final = tuple(
    (
        re.compile(
            _WORD_START + "(?:" + "|".join(f"({p})" for p, _ in rank) + ")" + _WORD_END,
            re.IGNORECASE,
        ),
        tuple(name for _, name in rank),
    )
    for rank in _PRODUCT_TYPE_RANKS
)


def parse_species(text: str) -> str | None:
    """Return the normalised species named in free text, or None if none is recognised.

    Case-insensitive, whole words. Multi-word names win over the single words they contain
    ("Alaska Pollock" -> ``pollock``, "Rock Salmon" -> ``dogfish``, "Seabass" -> ``sea bass``).
    If several species are named, the first one in the text is returned.

    Normalised names: salmon, cod, haddock, hake, mackerel, tuna, plaice, pollock (also pollack,
    Alaska pollock), sea bass (seabass, bass), sea bream (seabream, bream), trout (sea trout,
    salmon trout), coley (saithe), halibut, monkfish, sole (lemon/Dover sole), herring,
    dogfish (huss, rock salmon).
    """
    match = _SPECIES_RE.search(text)
    if match is None or match.lastindex is None:
        return None
    return _SPECIES[match.lastindex - 1][1]


def parse_product_type(text: str) -> str | None:
    """Return the normalised product type named in free text, or None if none is recognised.

    Case-insensitive, whole words, plurals accepted. Types: smoked, breaded (also crumbed,
    breadcrumbs, panko), battered (batter, tempura), fish cake (fishcake, fish cakes), goujon
    (goujons, goujonettes), fillet (filet), loin, portion, steak, whole.

    Priority: smoked > breaded/battered > fish cake/goujon > fillet/loin/portion/steak > whole
    ("Smoked Salmon Fillet" -> ``smoked``, "Breaded Cod Portion" -> ``breaded``). Within one
    rank the last word wins ("Salmon Fillet Portions" -> ``portion``).
    """
    for pattern, names in _PRODUCT_TYPE_RES:
        last = None
        for last in pattern.finditer(text):  # noqa: B007 - only the last match is wanted
            pass
        if last is not None and last.lastindex is not None:
            return names[last.lastindex - 1]
    return None
