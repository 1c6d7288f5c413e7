"""The reader's constants: the segmentation's limits and the path score's costs, set once (see each)."""

from __future__ import annotations

#: most pieces one character may be made of (a whole component is always a candidate)
MAX_PIECES = 5
#: The costs below (CUT, CROSS, JOIN, SHORT) were set by a random search over the path score on 600 strings of
#: MNIST *training* digits made as bench/read.py makes them (seed 2000), and checked on strings of test digits
#: of development seeds (101, 7), never on the benchmark's seed
#: log-probability cost of a cut through a component's ink where it crosses one stroke (touching glyphs
#: touch at a point) ...
CUT_COST = 0.0
#: ... and for each further stroke the cut crosses (a cut through a 0 or a 2 crosses two or three)
CROSS_COST = 0.6
#: ... of reading two separate components side by side as one character
JOIN_COST = 0.6
#: a character wider than this share of the line's height pays for it (MNIST's digits: 95 % are at most
#: 1.1 times as wide as tall, 99 % 1.4)
WIDE = 0.9
#: ... this much per unit of the excess (about the log of how rare such widths are)
WIDE_COST = 3.0
#: a character less tall than this share of the line's height pays for it (a 5's bar is no character)
SHORT = 0.8
#: ... this much per unit of the shortfall
SHORT_COST = 30.0
#: a component is given candidate cuts when it is wider than this share of the line's height (0.85 before: a 1
#: pressed into its neighbour, "15", "21", "91", is often a component narrower than that; 0.7 on dev seeds 101 /
#: 102: exact +0.006 / +0.002, 0.6 and 0.5 no better) ...
CUT_WIDTH = 0.7
#: ... and they lie at least this share of the line's height from its ends. (Cuts in narrower components and
#: nearer the ends, 0.5 and 0.08, which the verifier was trained on, read dev seeds 55 and 101 within a string of
#: these, with about 1.5 times the candidates: 0.64-0.75x the speed)
CUT_MARGIN = 0.18
#: ... and from each other
CUT_SPACING = 0.2
#: most pieces one line may have (a page of text or of specks is not a number: refused, not read for seconds)
MAX_LINE_PIECES = 160
#: the paths are scored with the model's probabilities softened by this temperature (p ** (1 / T),
#: renormalised): a glyph model is as sure of a fragment or of two glyphs squeezed into one box as of a
#: glyph, so its confidence is weighed against the shapes rather than above them (the characters' reported
#: probabilities are the model's own)
TEMPERATURE = 4.0
#: each candidate is classified as it is and shifted by one pixel up, down, left and right, and the
#: probabilities' geometric mean is used (a character cut out of a line sits less exactly in its box than an
#: MNIST digit in its own)
SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))
#: how many labels of each candidate character the beam tries, and how many paths it keeps per node
LABELS_PER_CHAR, BEAM = 3, 8
#: each candidate character's score gains this many times the verifier's log-probability that it is one whole
#: character (:mod:`glyphlab.reading.verifier`; set on development seeds, as the costs above)
VERIFY_WEIGHT = 0.5
#: a candidate whose verifier probability of being one whole character is below this is classified once, without
#: the :data:`SHIFTS` (speed: most such candidates are fragments and pairs, seldom on the best path). It stays in
#: the lattice: leaving those of several pieces out below 0.02, as the reader did (even below 0.001), left a whole
#: 5 or 6 the verifier doubts no path but its halves. With cuts in narrower components (:data:`CUT_WIDTH`), on dev
#: seeds 101 / 102 (augmented cnn-small): exact 0.888 / 0.872 -> 0.896 / 0.874, CER 2.65 / 3.61 -> 2.37 / 3.13 %,
#: splits 4 / 12 -> 2 / 3, merges 16 / 21 -> 18 / 30. Single pieces included and 0.3 rather than 0.02 (for speed:
#: 1.13-1.30x the six-digit strings a second): 101 / 102 0.898 / 0.876 -> 0.900 / 0.876 (0.1 the same, 0.5 and
#: 0.8 a string or two fewer)
DOUBT = 0.3
#: a line's confidence is the share of the paths the beam kept at its end that read its text, each weighed by
#: exp(this times its score): how much of the lattice's evidence is for that string, so a doubtful merge or cut
#: lowers it even when every character's probability is high (the product of the characters' probabilities,
#: the confidence before, gave 0.93 on average to strings 88 % right). Set on development seed 101 (expected
#: calibration error 0.025, against 0.046 for the product), checked on seed 102 (0.019 against 0.039)
POSTERIOR_SCALE = 3.0
