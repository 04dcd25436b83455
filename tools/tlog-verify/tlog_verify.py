#!/usr/bin/env python3
"""tlog-verify: an independent verifier for Tally trust-log receipts.

Written from the public specifications only (not from Tally's Rust code),
using nothing but the Python 3.11 standard library:

  * RFC 9162 (Certificate Transparency 2.0)
      - 2.1.1   Merkle Tree Hash: leaf = SHA-256(0x00 || d), node = SHA-256(0x01 || l || r)
      - 2.1.3.2 verifying an inclusion proof
      - 2.1.4.2 verifying a consistency proof
  * RFC 8032 (EdDSA): Ed25519 point decoding (5.1.3), point addition (5.1.4)
    and verification (5.1.7), implemented here with Python integers.
  * C2SP signed-note     (https://c2sp.org/signed-note)
  * C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint)
  * C2SP tlog-cosignature (https://c2sp.org/tlog-cosignature), Ed25519 "cosignature/v1"

Usage:
    tlog_verify.py receipt FILE --vkey KEY [--witness-vkey KEY ...] [--origin ORIGIN]
    tlog_verify.py consistency FILE --vkey KEY [--origin ORIGIN]

KEY is a signed-note verifier key "name+hex8keyid+base64(type || public key)",
or "@PATH" to read it from a file.  Exit status: 0 = verified (one "ok: ..."
line on stdout), 1 = a check failed (one "error: <check>: <detail>" line on
stderr), 2 = usage error (bad arguments, bad key, unreadable file).

This is verification code: nothing here handles secret keys, so nothing here
needs to be constant-time.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from typing import Optional, Union

# ---------------------------------------------------------------------------
# Input bounds.  Everything read from outside is bounded before it is used.
# ---------------------------------------------------------------------------

MAX_FILE_BYTES = 1 << 20          # receipt / consistency file: 1 MiB
MAX_NOTE_BYTES = 128 << 10        # one signed note: 128 KiB
MAX_PROOF_HASHES = 64             # inclusion or consistency path length
MAX_TREE_SIZE = 1 << 63           # sizes and indexes must be < 2^63
MAX_SIGNATURE_LINES = 100         # signed-note: "MUST accept at least up to 16"
MAX_VKEY_CHARS = 4096
HASH_LEN = 32

SIG_TYPE_ED25519 = 0x01           # signed-note: Ed25519 note signature
SIG_TYPE_COSIGNATURE_V1 = 0x04    # tlog-cosignature: timestamped Ed25519 cosignature


class VerifyError(Exception):
    """A verification check failed.  `check` names which one (e.g. "signature")."""

    def __init__(self, check: str, detail: str):
        super().__init__(f"{check}: {detail}")
        self.check = check
        self.detail = detail


class UsageError(Exception):
    """Bad command-line input (arguments, verifier keys, unreadable files)."""


# ===========================================================================
# Ed25519 (RFC 8032, section 5.1) with plain Python integers.
# ===========================================================================

# 5.1: curve constants of edwards25519.
ED_P = 2**255 - 19
ED_L = 2**252 + 27742317777372353535851937790883648493   # order of the base point
ED_D = (-121665 * pow(121666, -1, ED_P)) % ED_P
ED_SQRT_M1 = pow(2, (ED_P - 1) // 4, ED_P)               # a square root of -1

# Points are kept in extended homogeneous coordinates (X, Y, Z, T) with
# x = X/Z, y = Y/Z, x*y = T/Z (RFC 8032, 5.1.4).
Point = tuple[int, int, int, int]
ED_IDENTITY: Point = (0, 1, 1, 0)


def _ed_recover_x(y: int, sign: int) -> Optional[int]:
    """RFC 8032 5.1.3 steps 2-4: recover x from y and the sign bit x_0.

    Returns None when there is no valid x (the encoding is invalid).
    """
    # Step 2: x^2 = (y^2 - 1) / (d y^2 + 1) = u / v.
    u = (y * y - 1) % ED_P
    v = (ED_D * y * y + 1) % ED_P
    # Candidate root x = u v^3 (u v^7)^((p-5)/8).
    x = (u * pow(v, 3, ED_P) * pow(u * pow(v, 7, ED_P), (ED_P - 5) // 8, ED_P)) % ED_P
    # Step 3: three cases.
    vxx = (v * x * x) % ED_P
    if vxx == u:
        pass
    elif vxx == (-u) % ED_P:
        x = (x * ED_SQRT_M1) % ED_P
    else:
        return None                       # x^2 = u/v has no root: decoding fails
    # Step 4: x = 0 with x_0 = 1 is a non-canonical encoding: decoding fails.
    if x == 0 and sign == 1:
        return None
    if x & 1 != sign:
        x = ED_P - x
    return x


def ed_point_decode(data: bytes) -> Optional[Point]:
    """RFC 8032 5.1.3: decode a 32-byte point encoding, strictly.

    Step 1: y is the little-endian integer with bit 255 cleared, x_0 is bit
    255; y >= p is rejected (a non-canonical encoding), as the RFC requires.
    """
    if len(data) != 32:
        return None
    n = int.from_bytes(data, "little")
    sign = n >> 255
    y = n & ((1 << 255) - 1)
    if y >= ED_P:
        return None
    x = _ed_recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, (x * y) % ED_P)


def ed_point_encode(pt: Point) -> bytes:
    """RFC 8032 5.1.2: encode y (little-endian) with the low bit of x in bit 255."""
    X, Y, Z, _ = pt
    zinv = pow(Z, -1, ED_P)
    x = (X * zinv) % ED_P
    y = (Y * zinv) % ED_P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def ed_point_add(p: Point, q: Point) -> Point:
    """RFC 8032 5.1.4: point addition in extended coordinates.

    These formulas are complete (they also work for doubling and the identity).
    """
    X1, Y1, Z1, T1 = p
    X2, Y2, Z2, T2 = q
    A = ((Y1 - X1) * (Y2 - X2)) % ED_P
    B = ((Y1 + X1) * (Y2 + X2)) % ED_P
    C = (T1 * 2 * ED_D * T2) % ED_P
    D = (Z1 * 2 * Z2) % ED_P
    E, F, G, H = B - A, D - C, D + C, B + A
    return ((E * F) % ED_P, (G * H) % ED_P, (F * G) % ED_P, (E * H) % ED_P)


def ed_scalar_mult(k: int, pt: Point) -> Point:
    """[k]P by double-and-add (verification only: no secrets, no timing concern)."""
    result = ED_IDENTITY
    addend = pt
    while k > 0:
        if k & 1:
            result = ed_point_add(result, addend)
        addend = ed_point_add(addend, addend)
        k >>= 1
    return result


def ed_point_equal(p: Point, q: Point) -> bool:
    """Projective equality: x1/z1 == x2/z2 and y1/z1 == y2/z2."""
    X1, Y1, Z1, _ = p
    X2, Y2, Z2, _ = q
    return (X1 * Z2 - X2 * Z1) % ED_P == 0 and (Y1 * Z2 - Y2 * Z1) % ED_P == 0


def ed_has_small_order(pt: Point) -> bool:
    """True when [8]P is the identity (P is in the small torsion subgroup)."""
    return ed_point_equal(ed_scalar_mult(8, pt), ED_IDENTITY)


# 5.1: the base point B has y = 4/5 and positive (even) x.
_B_Y = (4 * pow(5, -1, ED_P)) % ED_P
_B_X = _ed_recover_x(_B_Y, 0)
assert _B_X is not None
ED_BASE: Point = (_B_X, _B_Y, 1, (_B_X * _B_Y) % ED_P)


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 5.1.7: verify an Ed25519 signature (pure Ed25519, empty context).

    Strict decoding: invalid or non-canonical encodings of A or R and any
    S >= L are rejected, as 5.1.7 step 1 requires.
    """
    if len(public_key) != 32 or len(signature) != 64:
        return False
    # Step 1: split the signature into R (a point) and S (an integer < L);
    # decode the public key A.  Any decoding failure means "invalid".
    r_bytes, s_bytes = signature[:32], signature[32:]
    A = ed_point_decode(public_key)
    R = ed_point_decode(r_bytes)
    if A is None or R is None:
        return False
    S = int.from_bytes(s_bytes, "little")
    if S >= ED_L:
        return False
    # Step 2: k = SHA-512(dom2(F, C) || R || A || PH(M)); for Ed25519 dom2 is
    # empty and PH is the identity.  R and A are the encodings as received.
    k = int.from_bytes(hashlib.sha512(r_bytes + public_key + message).digest(), "little") % ED_L
    # Step 3: check the group equation [8][S]B = [8]R + [8][k]A' (cofactored
    # form, as written in the RFC).
    lhs = ed_scalar_mult(8, ed_scalar_mult(S, ED_BASE))
    rhs = ed_scalar_mult(8, ed_point_add(R, ed_scalar_mult(k, A)))
    return ed_point_equal(lhs, rhs)


# ===========================================================================
# Merkle trees (RFC 9162, section 2.1).
# ===========================================================================

def merkle_leaf_hash(leaf: bytes) -> bytes:
    """RFC 9162 2.1.1: MTH({d(0)}) = HASH(0x00 || d(0))."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def merkle_node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 2.1.1: interior node = HASH(0x01 || MTH(left) || MTH(right))."""
    return hashlib.sha256(b"\x01" + left + right).digest()


# RFC 9162 2.1.1: the hash of an empty list is the hash of an empty string.
MERKLE_EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(Exception):
    """An inclusion or consistency proof did not verify."""


def verify_inclusion(leaf_index: int, tree_size: int, leaf_hash: bytes,
                     inclusion_path: list[bytes], root_hash: bytes) -> None:
    """RFC 9162 2.1.3.2: verify that `leaf_hash` is leaf `leaf_index` of the
    tree of size `tree_size` whose root is `root_hash`.  Raises ProofError."""
    if len(inclusion_path) > MAX_PROOF_HASHES:
        raise ProofError(f"path has {len(inclusion_path)} hashes (limit {MAX_PROOF_HASHES})")
    # Step 1: leaf_index must be < tree_size.
    if not 0 <= leaf_index < tree_size:
        raise ProofError(f"leaf_index {leaf_index} is not below tree size {tree_size}")
    # Step 2: fn = leaf_index, sn = tree_size - 1.
    fn, sn = leaf_index, tree_size - 1
    # Step 3: r = hash.
    r = leaf_hash
    # Step 4: fold in each path element.
    for p in inclusion_path:
        # 4a: a path longer than the tree is tall fails.
        if sn == 0:
            raise ProofError("path is longer than the tree is tall")
        # 4b: p is a left sibling when fn is odd or fn is the last node of its level.
        if fn & 1 or fn == sn:
            r = merkle_node_hash(p, r)                     # 4b.i
            if not fn & 1:                                 # 4b.ii
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = merkle_node_hash(r, p)                     # p is a right sibling
        # 4c: move up one level.
        fn >>= 1
        sn >>= 1
    # Step 5: the whole height must have been used and r must be the root.
    if sn != 0:
        raise ProofError("path is shorter than the tree is tall")
    if r != root_hash:
        raise ProofError("recomputed root does not match the checkpoint root")


def verify_consistency(first: int, second: int, first_hash: bytes, second_hash: bytes,
                       consistency_path: list[bytes]) -> None:
    """RFC 9162 2.1.4.2: verify that the tree (second, second_hash) is an
    append-only extension of the tree (first, first_hash).  Raises ProofError.

    Two cases that 2.1.4.2 leaves to the caller (its step 1 fails on an empty
    proof) are handled here explicitly, as in 2.1.4.1 where the proof is empty:
    first == second (roots must be equal) and first == 0 (the empty tree is a
    prefix of every tree; its root must be the empty-string hash).
    """
    if len(consistency_path) > MAX_PROOF_HASHES:
        raise ProofError(f"proof has {len(consistency_path)} hashes (limit {MAX_PROOF_HASHES})")
    if not 0 <= first <= second:
        raise ProofError(f"old size {first} is larger than new size {second}")
    if first == second:
        if consistency_path:
            raise ProofError("proof between equal sizes must be empty")
        if first_hash != second_hash:
            raise ProofError("equal sizes but different root hashes")
        return
    if first == 0:
        if consistency_path:
            raise ProofError("proof from the empty tree must be empty")
        if first_hash != MERKLE_EMPTY_ROOT:
            raise ProofError("old root is not the empty-tree hash")
        return
    path = list(consistency_path)
    # Step 1: an empty path fails.
    if not path:
        raise ProofError("proof is empty")
    # Step 2: if first is an exact power of 2, prepend first_hash.
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    # Step 3: fn = first - 1, sn = second - 1.
    fn, sn = first - 1, second - 1
    # Step 4: skip the levels where the old tree's last node is a right child.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5: fr = sr = the first path value.
    fr = sr = path[0]
    # Step 6: fold in each subsequent value.
    for c in path[1:]:
        # 6a
        if sn == 0:
            raise ProofError("proof is longer than expected")
        # 6b
        if fn & 1 or fn == sn:
            fr = merkle_node_hash(c, fr)                   # 6b.i
            sr = merkle_node_hash(c, sr)                   # 6b.ii
            if not fn & 1:                                 # 6b.iii
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = merkle_node_hash(sr, c)                   # only the new tree grows
        # 6c
        fn >>= 1
        sn >>= 1
    # Step 7: both roots must match and the path must have been fully used.
    if sn != 0:
        raise ProofError("proof is shorter than expected")
    if fr != first_hash:
        raise ProofError("proof does not lead to the old root")
    if sr != second_hash:
        raise ProofError("proof does not lead to the new root")


# ===========================================================================
# Base64 / number helpers.
# ===========================================================================

_DECIMAL_RE = re.compile(r"(0|[1-9][0-9]*)\Z")


def b64decode_canonical(text: str) -> bytes:
    """Standard base64 (RFC 4648 section 4) with padding, canonical form only.

    Raises ValueError.  Canonical = re-encoding gives back exactly `text`
    (this rejects whitespace, missing padding and non-zero trailing bits).
    """
    if not isinstance(text, str):
        raise ValueError("not a string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"invalid base64 ({exc})") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("non-canonical base64")
    return raw


def b64decode_lenient(text: str) -> bytes:
    """Standard base64 with padding; ignores non-zero trailing bits only."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"invalid base64 ({exc})") from None


def parse_decimal(text: str, limit: int) -> int:
    """ASCII decimal with no sign and no leading zeroes, below `limit`."""
    if len(text) > 40 or not _DECIMAL_RE.match(text):
        raise ValueError(f"{text[:40]!r} is not a canonical decimal number")
    value = int(text)
    if value >= limit:
        raise ValueError(f"{value} is too large")
    return value


def format_ns(ns: int) -> str:
    """Ledger time (ns since the Unix epoch) as an RFC 3339 UTC string."""
    secs, frac = divmod(ns, 10**9)
    try:
        dt = datetime.datetime.fromtimestamp(secs, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return f"{ns}ns"
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def format_seconds(secs: int) -> str:
    try:
        dt = datetime.datetime.fromtimestamp(secs, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return f"{secs}s"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


# ===========================================================================
# Signed notes (c2sp.org/signed-note) and verifier keys.
# ===========================================================================

def note_key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """signed-note: key ID = SHA-256(key name || 0x0A || signature type || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


def valid_key_name(name: str) -> bool:
    """signed-note: key names are non-empty and contain no Unicode spaces or '+'."""
    return bool(name) and "+" not in name and not any(ch.isspace() for ch in name)


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes          # 4 bytes
    sig_type: int          # 0x01 Ed25519 note signature, 0x04 cosignature/v1
    public_key: bytes      # 32-byte Ed25519 public key

    def describe(self) -> str:
        return f"{self.name} (key ID {self.key_id.hex()})"


def parse_vkey(text: str, allowed_types: tuple[int, ...]) -> VerifierKey:
    """Parse a verifier key "<name>+<hex8 key ID>+<base64(type || public key)>".

    The key ID is recomputed and must match, the type must be one of
    `allowed_types`, and the Ed25519 public key must decode to a point that
    is not of small order (a small-order key accepts forged signatures; this
    check goes beyond RFC 8032).  Raises UsageError.
    """
    if len(text) > MAX_VKEY_CHARS:
        raise UsageError("verifier key is too long")
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise UsageError("verifier key must look like name+keyid+base64key")
    name, hex_id, b64 = parts
    if not valid_key_name(name):
        raise UsageError(f"invalid key name {name!r}")
    if not re.fullmatch(r"[0-9a-fA-F]{8}", hex_id):
        raise UsageError(f"key ID {hex_id!r} is not 8 hex digits")
    try:
        raw = b64decode_canonical(b64)
    except ValueError as exc:
        raise UsageError(f"key material: {exc}") from None
    if not raw:
        raise UsageError("empty key material")
    sig_type, public_key = raw[0], raw[1:]
    if sig_type not in allowed_types:
        allowed = ", ".join(f"0x{t:02x}" for t in allowed_types)
        raise UsageError(f"key type 0x{sig_type:02x} is not supported here (expected {allowed})")
    if len(public_key) != 32:
        raise UsageError(f"Ed25519 public key must be 32 bytes, got {len(public_key)}")
    point = ed_point_decode(public_key)
    if point is None:
        raise UsageError("public key is not a valid Ed25519 point encoding")
    if ed_has_small_order(point):
        raise UsageError("public key is a small-order point")
    key_id = note_key_id(name, sig_type, public_key)
    if key_id.hex() != hex_id.lower():
        raise UsageError(f"key ID {hex_id} does not match the key (computed {key_id.hex()})")
    return VerifierKey(name, key_id, sig_type, public_key)


@dataclass(frozen=True)
class SignatureLine:
    name: str
    key_id: bytes          # first 4 bytes of the decoded signature
    signature: bytes       # the remaining bytes


def parse_signed_note(note: str) -> tuple[str, list[SignatureLine]]:
    """c2sp.org/signed-note "Format": split a note into its text and signature lines.

    Raises VerifyError("signature", ...) when the envelope is malformed.
    """
    def bad(detail: str) -> VerifyError:
        return VerifyError("signature", f"malformed signed note: {detail}")

    if not isinstance(note, str):
        raise bad("not a string")
    try:
        encoded = note.encode("utf-8")                     # MUST be valid UTF-8
    except UnicodeEncodeError:
        raise bad("not valid UTF-8") from None
    if len(encoded) > MAX_NOTE_BYTES:
        raise bad(f"larger than {MAX_NOTE_BYTES} bytes")
    # MUST NOT contain ASCII control characters other than newline.
    if any(b < 0x20 and b != 0x0A for b in encoded):
        raise bad("contains a control character")
    # The text is separated from the signatures by the last empty line; the
    # text keeps its final newline, the blank line belongs to neither.
    split = note.rfind("\n\n")
    if split < 0:
        raise bad("no blank line before the signatures (signature lines missing)")
    text = note[: split + 1]
    block = note[split + 2:]
    if not block:
        raise VerifyError("signature", "the checkpoint carries no signature lines")
    if not block.endswith("\n"):
        raise bad("signature block does not end with a newline")
    raw_lines = block[:-1].split("\n")
    if len(raw_lines) > MAX_SIGNATURE_LINES:
        raise bad(f"more than {MAX_SIGNATURE_LINES} signature lines")
    lines = []
    for raw in raw_lines:
        # "— <key name> <base64(key ID || signature)>": em dash U+2014 and a space.
        if not raw.startswith("\u2014 "):
            raise bad(f"signature line does not start with an em dash: {raw[:40]!r}")
        fields = raw[2:].split(" ")
        if len(fields) != 2 or not valid_key_name(fields[0]) or not fields[1]:
            raise bad(f"bad signature line {raw[:60]!r}")
        try:
            blob = b64decode_lenient(fields[1])
        except ValueError as exc:
            raise bad(f"signature of {fields[0]!r}: {exc}") from None
        if len(blob) < 5:
            raise bad(f"signature of {fields[0]!r} is too short")
        lines.append(SignatureLine(fields[0], blob[:4], blob[4:]))
    return text, lines


def _matching_lines(lines: list[SignatureLine], key: VerifierKey) -> list[SignatureLine]:
    """signed-note: a line belongs to a known key only if BOTH name and key ID match."""
    return [ln for ln in lines if ln.name == key.name and ln.key_id == key.key_id]


def verify_note_signature(text: str, lines: list[SignatureLine], key: VerifierKey) -> None:
    """c2sp.org/signed-note "Signatures" + "Ed25519 signatures".

    Lines of unknown keys are ignored.  Every line of the known key is
    verified (an Ed25519 signature over the note text); one that fails
    rejects the whole note (the spec's SHOULD); if none verifies, the note
    is rejected (the spec's MUST).
    """
    mine = _matching_lines(lines, key)
    if not mine:
        raise VerifyError("signature", f"no signature line from {key.describe()}")
    message = text.encode("utf-8")
    for line in mine:
        if not ed25519_verify(key.public_key, message, line.signature):
            raise VerifyError("signature", f"the signature of {key.describe()} does not verify")


def verify_cosignature(text: str, lines: list[SignatureLine], key: VerifierKey) -> int:
    """c2sp.org/tlog-cosignature, Ed25519 cosignature/v1.  Returns the timestamp.

    The signature is a timestamped_signature: u64 big-endian timestamp ||
    64-byte Ed25519 signature over
        "cosignature/v1\\n" || "time <decimal timestamp>\\n" || checkpoint note text.
    """
    mine = _matching_lines(lines, key)
    if not mine:
        raise VerifyError("cosignature", f"no cosignature from witness {key.describe()}")
    newest = -1
    for line in mine:
        if len(line.signature) != 8 + 64:
            raise VerifyError("cosignature", f"cosignature of {key.name} has the wrong length")
        timestamp = int.from_bytes(line.signature[:8], "big")
        if timestamp >= MAX_TREE_SIZE:                     # "MUST NOT exceed 2^63 - 1"
            raise VerifyError("cosignature", f"cosignature of {key.name} has a timestamp >= 2^63")
        message = f"cosignature/v1\ntime {timestamp}\n".encode("ascii") + text.encode("utf-8")
        if not ed25519_verify(key.public_key, message, line.signature[8:]):
            raise VerifyError("cosignature", f"the cosignature of {key.describe()} does not verify")
        newest = max(newest, timestamp)
    return newest


# ===========================================================================
# Checkpoints (c2sp.org/tlog-checkpoint).
# ===========================================================================

@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...]
    text: str                       # the signed note text (for cosignatures)
    cosigned: tuple[tuple[str, int], ...] = ()   # (witness name, timestamp)


def parse_checkpoint_text(text: str) -> tuple[str, int, bytes, tuple[str, ...]]:
    """tlog-checkpoint "Note text": origin, tree size, base64 root hash, then
    optional non-empty extension lines.  Raises VerifyError("checkpoint", ...)."""
    lines = text.split("\n")
    # The text ends with a newline, so the last split element is empty.
    if lines[-1] != "":
        raise VerifyError("checkpoint", "note text does not end with a newline")
    lines = lines[:-1]
    if len(lines) < 3:
        raise VerifyError("checkpoint", "fewer than three lines")
    if any(line == "" for line in lines):
        raise VerifyError("checkpoint", "contains an empty line")
    origin = lines[0]
    try:
        size = parse_decimal(lines[1], MAX_TREE_SIZE)
    except ValueError as exc:
        raise VerifyError("checkpoint", f"tree size: {exc}") from None
    try:
        root = b64decode_canonical(lines[2])
    except ValueError as exc:
        raise VerifyError("checkpoint", f"root hash: {exc}") from None
    if len(root) != HASH_LEN:
        raise VerifyError("checkpoint", f"root hash is {len(root)} bytes, not {HASH_LEN}")
    return origin, size, root, tuple(lines[3:])


def open_checkpoint(note: str, log_key: VerifierKey, origin: str,
                    witnesses: list[VerifierKey]) -> Checkpoint:
    """Verify a checkpoint note and return its contents.

    Order: envelope and log signature first (signed-note: the text MUST be
    ignored until a trusted signature verified), then the body, then the
    expected origin, then each required witness cosignature.
    """
    text, lines = parse_signed_note(note)
    verify_note_signature(text, lines, log_key)
    ck_origin, size, root, extensions = parse_checkpoint_text(text)
    if ck_origin != origin:
        raise VerifyError("checkpoint", f"origin {ck_origin!r} is not the expected log {origin!r}")
    cosigned = []
    for witness in witnesses:
        cosigned.append((witness.name, verify_cosignature(text, lines, witness)))
    return Checkpoint(ck_origin, size, root, extensions, text, tuple(cosigned))


# ===========================================================================
# Tally leaves.
# ===========================================================================

LEAF_TYPE_TRANSFER = 0x01
LEAF_TYPE_REGISTRATION = 0x02
TRANSFER_LEAF_LEN = 117
REGISTRATION_LEAF_MIN = 69
REGISTRATION_REFERENCE_MAX = 64
REGISTRATION_KINDS = {
    1: "document deposit",
    2: "merchant QR code",
    3: "e-invoice",
    4: "device certificate",
}


@dataclass(frozen=True)
class TransferLeaf:
    id: int
    debit_account_id: int
    credit_account_id: int
    amount: int
    pending_id: int
    user_data: int
    timeout_seconds: int
    kind: int
    flags: int
    currency: str
    timestamp_ns: int


@dataclass(frozen=True)
class RegistrationLeaf:
    id: int
    kind: int
    subject_digest: bytes
    registrant: int
    timestamp_ns: int
    reference: str


def _be(data: bytes, start: int, length: int) -> int:
    return int.from_bytes(data[start:start + length], "big")


def decode_leaf(leaf: bytes) -> Union[TransferLeaf, RegistrationLeaf]:
    """Decode a Tally leaf (all integers big-endian).  Raises VerifyError("leaf encoding", ...)."""
    def bad(detail: str) -> VerifyError:
        return VerifyError("leaf encoding", detail)

    if not leaf:
        raise bad("empty leaf")
    leaf_type = leaf[0]
    if leaf_type == LEAF_TYPE_TRANSFER:
        # 0 type, 1 version, 2 id(16), 18 debit(16), 34 credit(16), 50 amount(16),
        # 66 pending_id(16), 82 user_data(16), 98 timeout_seconds(4), 102 kind(2),
        # 104 flags(2), 106 currency(3 ASCII), 109 timestamp(8) = 117 bytes.
        if len(leaf) != TRANSFER_LEAF_LEN:
            raise bad(f"transfer leaf is {len(leaf)} bytes, expected {TRANSFER_LEAF_LEN}")
        if leaf[1] != 1:
            raise bad(f"unknown transfer encoding version {leaf[1]}")
        currency = leaf[106:109]
        if not all(0x21 <= b <= 0x7E for b in currency):
            raise bad(f"currency {currency!r} is not printable ASCII")
        return TransferLeaf(
            id=_be(leaf, 2, 16),
            debit_account_id=_be(leaf, 18, 16),
            credit_account_id=_be(leaf, 34, 16),
            amount=_be(leaf, 50, 16),
            pending_id=_be(leaf, 66, 16),
            user_data=_be(leaf, 82, 16),
            timeout_seconds=_be(leaf, 98, 4),
            kind=_be(leaf, 102, 2),
            flags=_be(leaf, 104, 2),
            currency=currency.decode("ascii"),
            timestamp_ns=_be(leaf, 109, 8),
        )
    if leaf_type == LEAF_TYPE_REGISTRATION:
        # 0 type, 1 version, 2 id(8), 10 kind(2), 12 subject digest(32),
        # 44 registrant(16), 60 timestamp(8), 68 reference length n(1),
        # 69 reference(n printable ASCII) = 69 + n bytes.
        if len(leaf) < REGISTRATION_LEAF_MIN:
            raise bad(f"registration leaf is {len(leaf)} bytes, shorter than {REGISTRATION_LEAF_MIN}")
        if leaf[1] != 1:
            raise bad(f"unknown registration encoding version {leaf[1]}")
        kind = _be(leaf, 10, 2)
        if kind not in REGISTRATION_KINDS:
            raise bad(f"unknown registration kind {kind}")
        n = leaf[68]
        if n > REGISTRATION_REFERENCE_MAX:
            raise bad(f"reference length {n} exceeds {REGISTRATION_REFERENCE_MAX}")
        if len(leaf) != REGISTRATION_LEAF_MIN + n:
            raise bad(f"registration leaf is {len(leaf)} bytes, expected {REGISTRATION_LEAF_MIN + n}")
        reference = leaf[69:69 + n]
        if not all(0x20 <= b <= 0x7E for b in reference):
            raise bad("reference is not printable ASCII")
        return RegistrationLeaf(
            id=_be(leaf, 2, 8),
            kind=kind,
            subject_digest=bytes(leaf[12:44]),
            registrant=_be(leaf, 44, 16),
            timestamp_ns=_be(leaf, 60, 8),
            reference=reference.decode("ascii"),
        )
    raise bad(f"unknown leaf type 0x{leaf_type:02x}")


def describe_leaf(leaf: Union[TransferLeaf, RegistrationLeaf]) -> str:
    if isinstance(leaf, TransferLeaf):
        return (f"transfer {leaf.id} (amount {leaf.amount} {leaf.currency}, "
                f"account {leaf.debit_account_id} -> {leaf.credit_account_id})")
    ref = f', reference "{leaf.reference}"' if leaf.reference else ""
    return (f"registration {leaf.id} ({REGISTRATION_KINDS[leaf.kind]}, "
            f"subject sha256:{leaf.subject_digest.hex()}, registrant {leaf.registrant}{ref})")


# ===========================================================================
# Input files.
# ===========================================================================

def _reject_duplicates(pairs: list) -> dict:
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed")


def load_json_file(path: str, what: str) -> dict:
    """Read a bounded JSON object.  Unreadable files are usage errors;
    oversized or malformed content is a verification failure."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise VerifyError(what, f"file is larger than {MAX_FILE_BYTES} bytes")
    try:
        obj = json.loads(data.decode("utf-8"), object_pairs_hook=_reject_duplicates,
                         parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise VerifyError(what, f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise VerifyError(what, "top level is not a JSON object")
    return obj


def _get_int(obj: dict, field: str, what: str) -> int:
    value = obj.get(field)
    if type(value) is not int:                              # excludes bool and float
        raise VerifyError(what, f"{field} must be an integer")
    if not 0 <= value < MAX_TREE_SIZE:
        raise VerifyError(what, f"{field} {value} is out of range [0, 2^63)")
    return value


def _get_str(obj: dict, field: str, what: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str):
        raise VerifyError(what, f"{field} must be a string")
    return value


def _get_hashes(obj: dict, field: str, what: str) -> list[bytes]:
    value = obj.get(field)
    if not isinstance(value, list):
        raise VerifyError(what, f"{field} must be a list of base64 hashes")
    if len(value) > MAX_PROOF_HASHES:
        raise VerifyError(what, f"{field} has {len(value)} hashes (limit {MAX_PROOF_HASHES})")
    hashes = []
    for i, item in enumerate(value):
        try:
            raw = b64decode_canonical(item)
        except ValueError as exc:
            raise VerifyError(what, f"{field}[{i}]: {exc}") from None
        if len(raw) != HASH_LEN:
            raise VerifyError(what, f"{field}[{i}] is {len(raw)} bytes, not {HASH_LEN}")
        hashes.append(raw)
    return hashes


def _get_id(obj: dict, field: str, limit: int) -> int:
    """Ids may be JSON strings (u128 does not fit a JSON double) or integers."""
    value = obj[field]
    if type(value) is int:
        if not 0 <= value < limit:
            raise VerifyError("receipt", f"{field} {value} is out of range")
        return value
    if isinstance(value, str):
        try:
            return parse_decimal(value, limit)
        except ValueError as exc:
            raise VerifyError("receipt", f"{field}: {exc}") from None
    raise VerifyError("receipt", f"{field} must be a decimal string or an integer")


def _cosigned_suffix(ck: Checkpoint) -> str:
    if not ck.cosigned:
        return ""
    parts = [f"{name} at {format_seconds(ts)}" for name, ts in ck.cosigned]
    return "; cosigned by " + ", ".join(parts)


# ===========================================================================
# The two commands.
# ===========================================================================

def verify_receipt(receipt: dict, log_key: VerifierKey, witnesses: list[VerifierKey],
                   origin: Optional[str] = None) -> str:
    """Verify a receipt; return the "ok: ..." line or raise VerifyError."""
    origin = log_key.name if origin is None else origin
    # 1. Receipt structure (unknown extra fields are ignored).
    has_transfer = "transfer_id" in receipt
    has_registration = "registration_id" in receipt
    if has_transfer == has_registration:
        raise VerifyError("receipt", "exactly one of transfer_id / registration_id is required")
    if has_transfer:
        claimed_type, claimed_id = "transfer", _get_id(receipt, "transfer_id", 1 << 128)
    else:
        claimed_type, claimed_id = "registration", _get_id(receipt, "registration_id", 1 << 64)
    leaf_index = _get_int(receipt, "leaf_index", "receipt")
    tree_size = _get_int(receipt, "tree_size", "receipt")
    try:
        leaf_bytes = b64decode_canonical(_get_str(receipt, "leaf", "receipt"))
    except ValueError as exc:
        raise VerifyError("receipt", f"leaf: {exc}") from None
    path = _get_hashes(receipt, "inclusion_path", "receipt")
    note = _get_str(receipt, "checkpoint", "receipt")

    # 2. Checkpoint: log signature, body, origin, witness cosignatures.
    ck = open_checkpoint(note, log_key, origin, witnesses)

    # 3. The receipt's tree_size must be the signed checkpoint's size.
    if tree_size != ck.size:
        raise VerifyError("size mismatch",
                          f"receipt tree_size {tree_size} but the checkpoint has size {ck.size}")

    # 4. The leaf must be well-formed and be the claimed transfer/registration.
    leaf = decode_leaf(leaf_bytes)
    leaf_type = "transfer" if isinstance(leaf, TransferLeaf) else "registration"
    if leaf_type != claimed_type:
        raise VerifyError("id mismatch", f"receipt is for a {claimed_type} but the leaf is a {leaf_type}")
    if leaf.id != claimed_id:
        raise VerifyError("id mismatch",
                          f"receipt {claimed_type}_id {claimed_id} but the leaf holds {leaf_type} {leaf.id}")

    # 5. RFC 9162 inclusion proof of the leaf against the signed root.
    try:
        verify_inclusion(leaf_index, tree_size, merkle_leaf_hash(leaf_bytes), path, ck.root)
    except ProofError as exc:
        raise VerifyError("inclusion proof", str(exc)) from None

    return (f"ok: {describe_leaf(leaf)} is leaf {leaf_index} of {ck.origin} "
            f"at size {ck.size}{_cosigned_suffix(ck)}")


def verify_consistency_file(obj: dict, log_key: VerifierKey, origin: Optional[str] = None,
                            witnesses: Optional[list[VerifierKey]] = None) -> str:
    """Verify {"old_checkpoint", "new_checkpoint", "proof"}; return the "ok: ..." line."""
    origin = log_key.name if origin is None else origin
    old_note = _get_str(obj, "old_checkpoint", "consistency")
    new_note = _get_str(obj, "new_checkpoint", "consistency")
    proof = _get_hashes(obj, "proof", "consistency")
    old = open_checkpoint(old_note, log_key, origin, [])
    new = open_checkpoint(new_note, log_key, origin, witnesses or [])
    try:
        verify_consistency(old.size, new.size, old.root, new.root, proof)
    except ProofError as exc:
        raise VerifyError("consistency proof", str(exc)) from None
    return (f"ok: {new.origin} at size {new.size} is an append-only extension "
            f"of size {old.size}{_cosigned_suffix(new)}")


# ===========================================================================
# Command line.
# ===========================================================================

class _Parser(argparse.ArgumentParser):
    def error(self, message):                               # exit 2, like argparse
        raise UsageError(message)


def _read_key_arg(arg: str) -> str:
    """A key argument is the key itself or "@PATH" (first non-empty line of PATH)."""
    if not arg.startswith("@"):
        return arg.strip()
    path = arg[1:]
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_VKEY_CHARS + 1)
    except OSError as exc:
        raise UsageError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"key file {path} is not UTF-8") from None
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    raise UsageError(f"key file {path} is empty")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tlog_verify.py",
                     description="Independent verifier for Tally trust-log receipts.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    rec = sub.add_parser("receipt", help="verify a transfer/registration receipt")
    rec.add_argument("file")
    rec.add_argument("--vkey", required=True, help="log verifier key (or @FILE)")
    rec.add_argument("--witness-vkey", action="append", default=[],
                     help="witness cosigner key (type 0x04, or @FILE); repeatable, each must cosign")
    rec.add_argument("--origin", help="expected checkpoint origin (default: the log key name)")
    con = sub.add_parser("consistency", help="verify a consistency proof between two checkpoints")
    con.add_argument("file")
    con.add_argument("--vkey", required=True, help="log verifier key (or @FILE)")
    con.add_argument("--witness-vkey", action="append", default=[],
                     help="witness key that must cosign the new checkpoint; repeatable")
    con.add_argument("--origin", help="expected checkpoint origin (default: the log key name)")
    return parser


def main(argv: Optional[list[str]] = None, stdout=None, stderr=None) -> int:
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    try:
        args = build_parser().parse_args(argv)
        try:
            log_key = parse_vkey(_read_key_arg(args.vkey), (SIG_TYPE_ED25519,))
        except UsageError as exc:
            raise UsageError(f"--vkey: {exc}") from None
        witnesses = []
        for arg in args.witness_vkey:
            try:
                witnesses.append(parse_vkey(_read_key_arg(arg), (SIG_TYPE_COSIGNATURE_V1,)))
            except UsageError as exc:
                raise UsageError(f"--witness-vkey: {exc}") from None
        if args.origin is not None and (not args.origin or "\n" in args.origin):
            raise UsageError("--origin must be a non-empty single line")
        if args.command == "receipt":
            line = verify_receipt(load_json_file(args.file, "receipt"), log_key, witnesses, args.origin)
        else:
            line = verify_consistency_file(load_json_file(args.file, "consistency"), log_key,
                                           args.origin, witnesses)
    except UsageError as exc:
        print(f"usage: tlog_verify.py {{receipt,consistency}} FILE --vkey KEY ...", file=stderr)
        print(f"error: {exc}", file=stderr)
        return 2
    except VerifyError as exc:
        print(f"error: {exc}", file=stderr)
        return 1
    print(line, file=stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
