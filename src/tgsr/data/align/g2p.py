"""Pronunciations for words missing from pocketsphinx's dictionary, from espeak-ng's rules.

Forced alignment needs a pronunciation for every transcript word, and a wrong one (a
letter-by-letter guess) is enough to derail the whole utterance. espeak-ng (bundled by
``espeakng-loader``) converts any English spelling to its phoneme mnemonics, which map
onto the ARPAbet phones of pocketsphinx's acoustic model.
"""

from __future__ import annotations

import ctypes
import re
import threading

_CHARS_UTF8 = 1
_AUDIO_OUTPUT_SYNCHRONOUS = 2

# espeak-ng English phoneme mnemonics -> ARPAbet (pocketsphinx en-us phone set)
_ESPEAK_TO_ARPA = {
    "a": "AE", "a#": "AE", "aa": "AA", "A:": "AA", "A@": "AA R", "A": "AA", "aI": "AY", "aI@": "AY ER",
    "aI3": "AY ER", "aU": "AW", "aU@": "AW ER", "@": "AH", "@2": "AH", "@5": "AH", "@L": "AH L", "@-": "AH",
    "3": "ER", "3:": "ER", "e": "EH", "E": "EH", "e@": "EH R", "eI": "EY", "i": "IY", "i:": "IY", "i@": "IH R",
    "i@3": "IH R", "I": "IH", "I2": "IH", "I#": "IH", "0": "AA", "O": "AO", "O:": "AO", "O@": "AO R",
    "o@": "AO R", "oU": "OW", "OI": "OY", "u": "UW", "u:": "UW", "U": "UH", "U@": "UH R", "V": "AH",
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "f": "F", "v": "V", "T": "TH", "D": "DH",
    "s": "S", "z": "Z", "S": "SH", "Z": "ZH", "h": "HH", "m": "M", "n": "N", "N": "NG", "l": "L", "r": "R",
    "w": "W", "j": "Y", "tS": "CH", "dZ": "JH", "t#": "T", "d#": "D", "n-": "N", "l/": "L", "r-": "R",
    "*": "D", "?": "T", "x": "K", "hw": "W", "m-": "M", "z#": "Z", "s2": "S",
}
_STRESS = re.compile(r"[',%=_!]")

_LOCK = threading.Lock()
_LIB = None


def _library():
    global _LIB
    if _LIB is None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path(), mode=ctypes.RTLD_LOCAL)
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        if lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0) <= 0:
            raise RuntimeError("espeak_Initialize failed")
        lib.espeak_SetVoiceByName(b"en-us")
        _LIB = lib
    return _LIB


def _to_arpa(mnemonic: str) -> str | None:
    m = _STRESS.sub("", mnemonic).strip()
    if not m:
        return None
    while m:
        if m in _ESPEAK_TO_ARPA:
            return _ESPEAK_TO_ARPA[m]
        m = m[:-1]  # drop variant marks (digits, '#', '-') one at a time
    return None


def espeak_arpabet(word: str) -> str | None:
    """ARPAbet pronunciation of ``word`` from espeak-ng, or None if espeak is unavailable."""
    try:
        with _LOCK:
            lib = _library()
            ptr = ctypes.c_char_p(word.encode("utf-8"))
            out = lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, ord("|") << 8) or b""
    except (ImportError, OSError, RuntimeError):
        return None
    phones = [_to_arpa(p) for p in out.decode("latin-1").replace(" ", "|").split("|")]
    phones = [p for p in phones if p]
    return " ".join(phones) or None


__all__ = ["espeak_arpabet"]
