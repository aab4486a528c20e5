"""Robust encodings against adversarial typos (RobEn, Jones et al., arXiv 2005.01229).

Text is tokenised (``tokens``), every word and every typo of it (``typos.TypoFamily``) is mapped
to a cluster representative (``encoding.Encoding``, built by ``build.build_encoding`` from the
typo graph of a vocabulary), and models see only encodings, so their robustness to the whole
typo family is computed exactly (``certify``) rather than estimated by an attack (``attack``).
"""

from stalwart.text.build import build_encoding
from stalwart.text.encoding import OOV, Encoding, IdentityEncoding, TokenEncoder
from stalwart.text.tokens import tokenize
from stalwart.text.typos import TypoFamily, typo_family
from stalwart.text.vocabulary import Vocabulary

__all__ = [
    "OOV",
    "Encoding",
    "IdentityEncoding",
    "TokenEncoder",
    "TypoFamily",
    "Vocabulary",
    "build_encoding",
    "tokenize",
    "typo_family",
]
