"""The words the simulated model speaks: the tokenizer numbers them, the text generator draws from them."""

from __future__ import annotations

from typing import Final

WORDS: Final = """
the of and to a in is that it for as with was on be by this are or from at an have not but which they
their can more one has all were will there when also its been would what about some into other than
these them only then so such may first new any most over time should each two where after very like
system model answer question data result value point case number part way work state problem because
same both through between under while first could again need make take use find show give think know
see look want come go say tell ask try call keep let begin seem help turn start might must still here
every just much well back even good great small large long little high right old big different next
early young important few public bad able last own other true false simple clear certain possible
likely general specific local common main key given known total final whole half full open short
step method approach reason idea example detail factor term rule order level form line set group
process change effect cause source result test check count sum rate speed size length area price cost
user request server cache token memory prefix batch queue stream worker route load node path graph tree
function equation integer prime square root angle triangle circle side edge vertex matrix vector
probability expected variable constant limit series sequence term proof lemma claim condition
therefore however perhaps maybe actually instead rather indeed thus hence so wait hmm okay alright
consider compute assume suppose note recall verify confirm check derive simplify expand substitute
first second third last next previous initial remaining original current correct wrong exact approximate
city country river history language music story book game team player market money bank company
people person child family friend teacher student doctor water food light fire air earth sun moon star
morning evening night day week month year hour minute second moment season summer winter spring autumn
because although unless since until whether either neither both only even also already always never often
""".split()  # noqa: SIM905 - a word list reads better as prose

# Sentences start with a capitalised word; these read like a model thinking out loud or answering.
STARTERS: Final = """
The This So Wait Hmm Okay Now First Then Next Therefore However Let Suppose Consider Note Since If When
Actually Maybe Perhaps Thus Also Finally In For We It That Each
""".split()  # noqa: SIM905


def vocabulary_pieces() -> list[str]:
    """Every piece the generator can emit, in a fixed order (the tokenizer numbers them from 1000)."""
    pieces: list[str] = []
    words = list(dict.fromkeys(WORDS + [w.lower() for w in STARTERS]))
    for w in words:
        pieces += [" " + w, w]
    for w in dict.fromkeys(STARTERS + [w.capitalize() for w in words]):
        pieces += [" " + w, w]
    pieces += [",", ".", "?", ":", "\n", "\n\n"]
    return list(dict.fromkeys(pieces))
