"""Tests for tlog_verify.py (standard library unittest only).

Run from the repository root (or anywhere):
    python3 -m unittest discover -s tools/tlog-verify

The module also contains a small *test-only* Ed25519 signer (RFC 8032
5.1.5/5.1.6) and a reference Merkle tree builder (RFC 9162 2.1.1, 2.1.3.1,
2.1.4.1), so that logs, checkpoints, cosignatures and consistency files can
be constructed from scratch.  The verifier itself never signs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import tlog_verify as tv  # noqa: E402

TESTDATA = os.path.join(HERE, "testdata")
SAMPLE_RECEIPT = os.path.join(TESTDATA, "receipt-transfer.json")
SAMPLE_VKEY_FILE = os.path.join(TESTDATA, "receipt-transfer.vkey")
SCRIPT = os.path.join(HERE, "tlog_verify.py")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


# ---------------------------------------------------------------------------
# Test-only Ed25519 signing (RFC 8032 5.1.5 key generation, 5.1.6 signing).
# ---------------------------------------------------------------------------

def ed25519_expand(seed: bytes) -> tuple[int, bytes]:
    """5.1.5: h = SHA-512(seed); s = clamp(h[0:32]); prefix = h[32:64]."""
    h = hashlib.sha512(seed).digest()
    s = int.from_bytes(h[:32], "little")
    s &= (1 << 254) - 8        # clear the 3 low bits and bits 254..255
    s |= 1 << 254              # set bit 254
    return s, h[32:]


def ed25519_public(seed: bytes) -> bytes:
    s, _ = ed25519_expand(seed)
    return tv.ed_point_encode(tv.ed_scalar_mult(s, tv.ED_BASE))


def ed25519_sign(seed: bytes, message: bytes) -> bytes:
    """5.1.6: R = [r]B with r = SHA-512(prefix || M); S = r + k s mod L."""
    s, prefix = ed25519_expand(seed)
    public = ed25519_public(seed)
    r = int.from_bytes(hashlib.sha512(prefix + message).digest(), "little") % tv.ED_L
    r_enc = tv.ed_point_encode(tv.ed_scalar_mult(r, tv.ED_BASE))
    k = int.from_bytes(hashlib.sha512(r_enc + public + message).digest(), "little") % tv.ED_L
    S = (r + k * s) % tv.ED_L
    return r_enc + S.to_bytes(32, "little")


# ---------------------------------------------------------------------------
# Test-only signed notes, checkpoints and cosignatures.
# ---------------------------------------------------------------------------

class Signer:
    def __init__(self, name: str, seed: bytes, sig_type: int = tv.SIG_TYPE_ED25519):
        self.name = name
        self.seed = seed
        self.sig_type = sig_type
        self.public = ed25519_public(seed)
        self.key_id = tv.note_key_id(name, sig_type, self.public)

    @property
    def vkey(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{b64(bytes([self.sig_type]) + self.public)}"

    def note_line(self, text: str) -> str:
        """signed-note: an Ed25519 signature over the note text."""
        sig = ed25519_sign(self.seed, text.encode("utf-8"))
        return f"\u2014 {self.name} {b64(self.key_id + sig)}\n"

    def cosignature_line(self, text: str, timestamp: int) -> str:
        """tlog-cosignature: cosignature/v1 timestamped Ed25519 signature."""
        msg = f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode("utf-8")
        sig = ed25519_sign(self.seed, msg)
        return f"\u2014 {self.name} {b64(self.key_id + timestamp.to_bytes(8, 'big') + sig)}\n"


def checkpoint_text(origin: str, size: int, root: bytes, extensions=()) -> str:
    return f"{origin}\n{size}\n{b64(root)}\n" + "".join(e + "\n" for e in extensions)


def signed_note(text: str, *lines: str) -> str:
    return text + "\n" + "".join(lines)


# ---------------------------------------------------------------------------
# Reference Merkle tree (RFC 9162 2.1.1 MTH, 2.1.3.1 PATH, 2.1.4.1 PROOF),
# written straight from the recursive definitions.
# ---------------------------------------------------------------------------

def largest_pow2_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = largest_pow2_below(n)
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = largest_pow2_below(n)
    if m < k:
        return ref_path(m, leaves[:k]) + [mth(leaves[k:])]
    return ref_path(m - k, leaves[k:]) + [mth(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [mth(leaves)]
    k = largest_pow2_below(n)
    if m <= k:
        return ref_subproof(m, leaves[:k], b) + [mth(leaves[k:])]
    return ref_subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


def ref_proof(m: int, leaves: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]); empty for m == 0 and m == n."""
    if m == 0:
        return []
    return ref_subproof(m, leaves, True)


# ---------------------------------------------------------------------------
# Tally leaf encoders (test-only), from the layout in the brief.
# ---------------------------------------------------------------------------

def encode_transfer(id_, debit, credit, amount, currency=b"CNY", pending_id=0, user_data=0,
                    timeout=0, kind=1, flags=0, timestamp=1_700_000_000_000_000_000,
                    leaf_type=0x01, version=1) -> bytes:
    out = bytes([leaf_type, version])
    for v in (id_, debit, credit, amount, pending_id, user_data):
        out += v.to_bytes(16, "big")
    out += timeout.to_bytes(4, "big") + kind.to_bytes(2, "big") + flags.to_bytes(2, "big")
    out += currency + timestamp.to_bytes(8, "big")
    return out


def encode_registration(id_, kind, subject: bytes, registrant, reference: bytes = b"",
                        timestamp=1_700_000_000_000_000_000, leaf_type=0x02, version=1,
                        ref_len=None) -> bytes:
    n = len(reference) if ref_len is None else ref_len
    return (bytes([leaf_type, version]) + id_.to_bytes(8, "big") + kind.to_bytes(2, "big")
            + subject + registrant.to_bytes(16, "big") + timestamp.to_bytes(8, "big")
            + bytes([n]) + reference)


LOG = Signer("example.test/log", b"\x11" * 32)
OTHER_LOG = Signer("example.test/log", b"\x22" * 32)          # same name, other key
WITNESS1 = Signer("witness.example/w1", b"\x33" * 32, tv.SIG_TYPE_COSIGNATURE_V1)
WITNESS2 = Signer("witness.example/w2", b"\x44" * 32, tv.SIG_TYPE_COSIGNATURE_V1)


def make_receipt(leaves: list[bytes], index: int, size: int, id_field: str, id_value,
                 signer: Signer = LOG, witnesses=(), extra_lines=()) -> dict:
    text = checkpoint_text(signer.name, size, mth(leaves[:size]))
    lines = [signer.note_line(text)] + [w.cosignature_line(text, 1_700_000_000 + i)
                                        for i, w in enumerate(witnesses)]
    return {
        id_field: id_value,
        "leaf_index": index,
        "tree_size": size,
        "leaf": b64(leaves[index]),
        "inclusion_path": [b64(h) for h in ref_path(index, leaves[:size])],
        "checkpoint": signed_note(text, *lines, *extra_lines),
    }


def run_main(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = tv.main(args, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


# ===========================================================================
# Ed25519
# ===========================================================================

# RFC 8032 section 7.1: (secret key, public key, message, signature).
RFC8032_VECTORS = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
     "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
     "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
     "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


class Ed25519Test(unittest.TestCase):
    def test_rfc8032_vectors_verify(self):
        for i, (_, pk, msg, sig) in enumerate(RFC8032_VECTORS, 1):
            with self.subTest(test=i):
                self.assertTrue(tv.ed25519_verify(bytes.fromhex(pk), bytes.fromhex(msg), bytes.fromhex(sig)))

    def test_rfc8032_vectors_test_signer(self):
        # The test-only signer reproduces the RFC signatures byte for byte.
        for i, (sk, pk, msg, sig) in enumerate(RFC8032_VECTORS, 1):
            with self.subTest(test=i):
                self.assertEqual(ed25519_public(bytes.fromhex(sk)).hex(), pk)
                self.assertEqual(ed25519_sign(bytes.fromhex(sk), bytes.fromhex(msg)).hex(), sig)

    def test_flipped_bits_rejected(self):
        for i, (_, pk, msg, sig) in enumerate(RFC8032_VECTORS, 1):
            pk, msg, sig = bytes.fromhex(pk), bytes.fromhex(msg), bytes.fromhex(sig)
            for bit in (0, 7, 100, 255, 256, 300, 511):
                with self.subTest(test=i, sig_bit=bit):
                    bad = bytearray(sig)
                    bad[bit // 8] ^= 1 << (bit % 8)
                    self.assertFalse(tv.ed25519_verify(pk, msg, bytes(bad)))
            for bit in (0, 100, 254):
                with self.subTest(test=i, key_bit=bit):
                    bad = bytearray(pk)
                    bad[bit // 8] ^= 1 << (bit % 8)
                    self.assertFalse(tv.ed25519_verify(bytes(bad), msg, sig))
            with self.subTest(test=i, message="changed"):
                self.assertFalse(tv.ed25519_verify(pk, msg + b"\x00", sig))

    def test_non_canonical_s_rejected(self):
        _, pk, msg, sig = (bytes.fromhex(x) for x in RFC8032_VECTORS[0])
        s = int.from_bytes(sig[32:], "little")
        # S + L satisfies the group equation but is not canonical.
        bad = sig[:32] + (s + tv.ED_L).to_bytes(32, "little")
        self.assertFalse(tv.ed25519_verify(pk, msg, bad))

    def test_invalid_point_encodings(self):
        # y >= p is non-canonical.
        self.assertIsNone(tv.ed_point_decode(tv.ED_P.to_bytes(32, "little")))
        self.assertIsNone(tv.ed_point_decode((tv.ED_P + 1).to_bytes(32, "little")))
        # y = 1 gives x = 0; with the sign bit set that is non-canonical.
        self.assertIsNotNone(tv.ed_point_decode((1).to_bytes(32, "little")))
        self.assertIsNone(tv.ed_point_decode(((1 << 255) | 1).to_bytes(32, "little")))
        # Some y has no x on the curve.
        y = 2
        while tv.ed_point_decode(y.to_bytes(32, "little")) is not None:
            y += 1
        self.assertIsNone(tv.ed_point_decode(y.to_bytes(32, "little")))
        # Such encodings are rejected as R and as A.
        _, pk, msg, sig = (bytes.fromhex(x) for x in RFC8032_VECTORS[0])
        self.assertFalse(tv.ed25519_verify(pk, msg, y.to_bytes(32, "little") + sig[32:]))
        self.assertFalse(tv.ed25519_verify(y.to_bytes(32, "little"), msg, sig))
        self.assertFalse(tv.ed25519_verify(pk, msg, sig[:63]))

    def test_encode_decode_roundtrip(self):
        pt = tv.ed_scalar_mult(123456789, tv.ED_BASE)
        enc = tv.ed_point_encode(pt)
        self.assertTrue(tv.ed_point_equal(tv.ed_point_decode(enc), pt))
        self.assertTrue(tv.ed_point_equal(tv.ed_scalar_mult(tv.ED_L, tv.ED_BASE), tv.ED_IDENTITY))

    def test_small_order_verifier_key_rejected(self):
        identity = tv.ed_point_encode(tv.ED_IDENTITY)        # y = 1, small order
        name = "example.test/log"
        material = b64(b"\x01" + identity)
        vkey = f"{name}+{tv.note_key_id(name, 1, identity).hex()}+{material}"
        with self.assertRaises(tv.UsageError):
            tv.parse_vkey(vkey, (1,))


# ===========================================================================
# Merkle trees
# ===========================================================================

# The well-known 8-leaf tree of the RFC 6962 reference implementation tests.
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",   # size 0
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")]
# Published proofs for the same tree.
CT_INCLUSION = {
    (0, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (5, 8): ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
    (2, 3): ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
}
CT_CONSISTENCY = {
    (1, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (6, 8): ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
    (2, 5): ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"],
}


def inclusion_ok(index, size, leaf_hash, path, root) -> bool:
    try:
        tv.verify_inclusion(index, size, leaf_hash, path, root)
        return True
    except tv.ProofError:
        return False


def consistency_ok(m, n, root_m, root_n, proof) -> bool:
    try:
        tv.verify_consistency(m, n, root_m, root_n, proof)
        return True
    except tv.ProofError:
        return False


def flipped(h: bytes) -> bytes:
    return bytes([h[0] ^ 0x80]) + h[1:]


class MerkleTest(unittest.TestCase):
    def test_reference_roots(self):
        self.assertEqual(tv.MERKLE_EMPTY_ROOT, CT_ROOTS[0])
        for size in range(0, 9):
            with self.subTest(size=size):
                self.assertEqual(mth(CT_LEAVES[:size]), CT_ROOTS[size])
        self.assertEqual(tv.merkle_leaf_hash(CT_LEAVES[0]), CT_ROOTS[1])
        self.assertEqual(tv.merkle_node_hash(tv.merkle_leaf_hash(CT_LEAVES[0]),
                                             tv.merkle_leaf_hash(CT_LEAVES[1])), CT_ROOTS[2])

    def test_published_proofs(self):
        for (index, size), path in CT_INCLUSION.items():
            path = [bytes.fromhex(h) for h in path]
            with self.subTest(inclusion=(index, size)):
                self.assertEqual(ref_path(index, CT_LEAVES[:size]), path)
                tv.verify_inclusion(index, size, tv.merkle_leaf_hash(CT_LEAVES[index]), path, CT_ROOTS[size])
        for (m, n), proof in CT_CONSISTENCY.items():
            proof = [bytes.fromhex(h) for h in proof]
            with self.subTest(consistency=(m, n)):
                self.assertEqual(ref_proof(m, CT_LEAVES[:n]), proof)
                tv.verify_consistency(m, n, CT_ROOTS[m], CT_ROOTS[n], proof)

    def _check_all_inclusion(self, leaves):
        roots = [mth(leaves[:n]) for n in range(len(leaves) + 1)]
        for size in range(1, len(leaves) + 1):
            for index in range(size):
                lh = tv.merkle_leaf_hash(leaves[index])
                path = ref_path(index, leaves[:size])
                self.assertTrue(inclusion_ok(index, size, lh, path, roots[size]), (index, size))
                # Altered proofs fail.
                for j in range(len(path)):
                    bad = list(path)
                    bad[j] = flipped(bad[j])
                    self.assertFalse(inclusion_ok(index, size, lh, bad, roots[size]), (index, size, j))
                if path:
                    self.assertFalse(inclusion_ok(index, size, lh, path[:-1], roots[size]))
                self.assertFalse(inclusion_ok(index, size, lh, path + [roots[size]], roots[size]))
                self.assertFalse(inclusion_ok(index, size, flipped(lh), path, roots[size]))
                for other in range(size):
                    if other != index:
                        self.assertFalse(inclusion_ok(other, size, lh, path, roots[size]), (index, other, size))
                for other_size in range(1, len(leaves) + 1):
                    if other_size != size and index < other_size:
                        self.assertFalse(inclusion_ok(index, other_size, lh, path, roots[other_size]),
                                         (index, size, other_size))
                self.assertFalse(inclusion_ok(index, size, lh, path, flipped(roots[size])))
        self.assertFalse(inclusion_ok(0, 0, tv.merkle_leaf_hash(b""), [], roots[0]))
        self.assertFalse(inclusion_ok(len(leaves), len(leaves), tv.merkle_leaf_hash(b""), [], roots[-1]))

    def _check_all_consistency(self, leaves):
        roots = [mth(leaves[:n]) for n in range(len(leaves) + 1)]
        for n in range(0, len(leaves) + 1):
            for m in range(0, n + 1):
                proof = ref_proof(m, leaves[:n])
                self.assertTrue(consistency_ok(m, n, roots[m], roots[n], proof), (m, n))
                for j in range(len(proof)):
                    bad = list(proof)
                    bad[j] = flipped(bad[j])
                    self.assertFalse(consistency_ok(m, n, roots[m], roots[n], bad), (m, n, j))
                if proof:
                    self.assertFalse(consistency_ok(m, n, roots[m], roots[n], proof[:-1]), (m, n))
                self.assertFalse(consistency_ok(m, n, roots[m], roots[n], proof + [roots[n]]), (m, n))
                self.assertFalse(consistency_ok(m, n, flipped(roots[m]), roots[n], proof), (m, n))
                if m > 0:   # from the empty tree there is nothing to prove about the new root
                    self.assertFalse(consistency_ok(m, n, roots[m], flipped(roots[n]), proof), (m, n))
                for other in range(0, n + 1):
                    # (An empty proof is legitimately valid for both m = 0 and m = n.)
                    if other != m and ref_proof(other, leaves[:n]) != proof:
                        self.assertFalse(consistency_ok(other, n, roots[other], roots[n], proof), (m, other, n))
                if m < n:
                    # Reversed direction never verifies.
                    self.assertFalse(consistency_ok(n, m, roots[n], roots[m], proof), (m, n))

    def test_all_pairs_reference_tree(self):
        self._check_all_inclusion(CT_LEAVES)
        self._check_all_consistency(CT_LEAVES)

    def test_all_pairs_larger_tree(self):
        leaves = [b"leaf %d" % i for i in range(21)]
        self._check_all_inclusion(leaves)
        self._check_all_consistency(leaves)

    def test_proof_length_bound(self):
        h = tv.merkle_leaf_hash(b"x")
        with self.assertRaises(tv.ProofError):
            tv.verify_inclusion(0, 2**62, h, [h] * 65, h)
        with self.assertRaises(tv.ProofError):
            tv.verify_consistency(1, 2**62, h, h, [h] * 65)


# ===========================================================================
# Notes, keys, checkpoints
# ===========================================================================

class NoteTest(unittest.TestCase):
    def test_sample_key_parses(self):
        with open(SAMPLE_VKEY_FILE) as fh:
            key = tv.parse_vkey(fh.read().strip(), (1,))
        self.assertEqual(key.name, "tally-log-e22e5f41")
        self.assertEqual(key.key_id.hex(), "bbaffab4")

    def test_bad_vkeys(self):
        good = LOG.vkey
        name, kid, mat = good.split("+", 2)
        type2 = b64(b"\x02" + LOG.public)
        for bad in ("", "nokey", f"{name}+{kid}", f"{name}+00000000+{mat}", f"{name}+{kid}0+{mat}",
                    f"{name}+{kid}+{mat[:-2]}", f"a b+{kid}+{mat}", f"{name}+{kid}+{type2}"):
            with self.subTest(vkey=bad):
                with self.assertRaises(tv.UsageError):
                    tv.parse_vkey(bad, (1,))
        self.assertEqual(tv.parse_vkey(f"{name}+{kid.upper()}+{mat}", (1,)).key_id, LOG.key_id)
        # A witness (0x04) key is not a log key, and vice versa.
        with self.assertRaises(tv.UsageError):
            tv.parse_vkey(WITNESS1.vkey, (1,))
        with self.assertRaises(tv.UsageError):
            tv.parse_vkey(LOG.vkey, (4,))

    def test_note_envelope(self):
        text = checkpoint_text(LOG.name, 1, CT_ROOTS[1])
        key = tv.parse_vkey(LOG.vkey, (1,))
        note = signed_note(text, LOG.note_line(text))
        t, lines = tv.parse_signed_note(note)
        self.assertEqual(t, text)
        tv.verify_note_signature(t, lines, key)
        for bad in (text, text + "\n", note.rstrip("\n"), note.replace("\u2014", "-"),
                    note.replace("\u2014 ", "\u2014"), note + "garbage\n", note.replace("\n1\n", "\r\n1\n"),
                    note.replace(LOG.name + " ", LOG.name + "  ")):
            with self.subTest(note=bad):
                with self.assertRaises(tv.VerifyError) as cm:
                    tv.verify_note_signature(*tv.parse_signed_note(bad), key)
                self.assertEqual(cm.exception.check, "signature")

    def test_unknown_lines_ignored_known_bad_line_rejects(self):
        text = checkpoint_text(LOG.name, 1, CT_ROOTS[1])
        key = tv.parse_vkey(LOG.vkey, (1,))
        other = Signer("other.example/key", b"\x55" * 32)
        same_id_other_name = f"\u2014 another.name {b64(LOG.key_id + b'x' * 64)}\n"
        note = signed_note(text, other.note_line(text), OTHER_LOG.note_line(text), same_id_other_name,
                           LOG.note_line(text))
        tv.verify_note_signature(*tv.parse_signed_note(note), key)
        # A second line under the trusted key that does not verify rejects the note.
        bad_line = f"\u2014 {LOG.name} {b64(LOG.key_id + b'y' * 64)}\n"
        with self.assertRaises(tv.VerifyError):
            tv.verify_note_signature(*tv.parse_signed_note(note + bad_line), key)

    def test_checkpoint_text(self):
        root = b64(CT_ROOTS[3])
        self.assertEqual(tv.parse_checkpoint_text(f"o\n3\n{root}\n"), ("o", 3, CT_ROOTS[3], ()))
        self.assertEqual(tv.parse_checkpoint_text(f"o\n3\n{root}\next 1\n")[3], ("ext 1",))
        for bad in (f"o\n03\n{root}\n", f"o\n-3\n{root}\n", f"o\n3\n", f"\n3\n{root}\n",
                    f"o\n3\n{root[:-1]}\n", f"o\n3\n{b64(b'x' * 31)}\n", f"o\n{2**63}\n{root}\n",
                    f"o\n3\n{root}\n\next\n", f"o\n 3\n{root}\n"):
            with self.subTest(text=bad):
                with self.assertRaises(tv.VerifyError) as cm:
                    tv.parse_checkpoint_text(bad)
                self.assertEqual(cm.exception.check, "checkpoint")


# ===========================================================================
# Receipts
# ===========================================================================

class ReceiptTestBase(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name
        with open(SAMPLE_RECEIPT) as fh:
            self.sample = json.load(fh)
        with open(SAMPLE_VKEY_FILE) as fh:
            self.sample_vkey = fh.read().strip()

    def tearDown(self):
        self._tmp.cleanup()

    def write(self, obj, name="receipt.json") -> str:
        path = os.path.join(self.tmp, name)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, ensure_ascii=False)
        return path

    def verify(self, receipt, vkey=None, extra=()):
        return run_main(["receipt", self.write(receipt), "--vkey", vkey or self.sample_vkey, *extra])

    def assertOk(self, result, expected=None):
        code, out, err = result
        self.assertEqual((code, err), (0, ""), out + err)
        self.assertEqual(out.count("\n"), 1)
        self.assertTrue(out.startswith("ok: "), out)
        if expected is not None:
            self.assertEqual(out.rstrip("\n"), expected)

    def assertFails(self, result, check):
        code, out, err = result
        self.assertEqual(code, 1, out + err)
        self.assertEqual(out, "")
        self.assertEqual(err.count("\n"), 1, err)
        self.assertTrue(err.startswith(f"error: {check}: "), err)


SAMPLE_OK = "ok: transfer 6 (amount 3850 CNY, account 1001 -> 101) is leaf 5 of tally-log-e22e5f41 at size 11"


class SampleReceiptTest(ReceiptTestBase):
    def test_sample_verifies(self):
        self.assertOk(self.verify(self.sample), SAMPLE_OK)
        self.assertOk(run_main(["receipt", SAMPLE_RECEIPT, "--vkey", "@" + SAMPLE_VKEY_FILE]), SAMPLE_OK)

    def test_sample_leaf_decodes(self):
        leaf = tv.decode_leaf(unb64(self.sample["leaf"]))
        self.assertIsInstance(leaf, tv.TransferLeaf)
        self.assertEqual((leaf.id, leaf.debit_account_id, leaf.credit_account_id, leaf.amount, leaf.currency),
                         (6, 1001, 101, 3850, "CNY"))

    def test_extra_fields_ignored(self):
        r = dict(self.sample, kind="transfer", note="anything", nested={"a": [1, 2]})
        self.assertOk(self.verify(r), SAMPLE_OK)

    def test_unknown_signature_lines_ignored(self):
        other = Signer("witness.example/unrelated", b"\x66" * 32)
        text = self.sample["checkpoint"].split("\n\n")[0] + "\n"
        r = dict(self.sample, checkpoint=self.sample["checkpoint"] + other.note_line(text)
                 + WITNESS1.cosignature_line(text, 1_700_000_000))
        self.assertOk(self.verify(r), SAMPLE_OK)

    def test_changed_amount_byte(self):
        leaf = bytearray(unb64(self.sample["leaf"]))
        leaf[65] ^= 0x01                                     # last byte of amount (offset 50..65)
        self.assertFails(self.verify(dict(self.sample, leaf=b64(bytes(leaf)))), "inclusion proof")

    def test_changed_path_hash(self):
        for i in range(len(self.sample["inclusion_path"])):
            with self.subTest(element=i):
                path = list(self.sample["inclusion_path"])
                path[i] = b64(flipped(unb64(path[i])))
                self.assertFails(self.verify(dict(self.sample, inclusion_path=path)), "inclusion proof")
        self.assertFails(self.verify(dict(self.sample, inclusion_path=self.sample["inclusion_path"][:-1])),
                         "inclusion proof")

    def test_changed_leaf_index(self):
        for index in (4, 6, 10, 11, 12):
            with self.subTest(index=index):
                self.assertFails(self.verify(dict(self.sample, leaf_index=index)), "inclusion proof")

    def test_changed_tree_size(self):
        for size in (10, 12, 0):
            with self.subTest(size=size):
                self.assertFails(self.verify(dict(self.sample, tree_size=size)), "size mismatch")

    def test_changed_checkpoint_root(self):
        lines = self.sample["checkpoint"].split("\n")
        root = unb64(lines[2])
        lines[2] = b64(flipped(root))
        self.assertFails(self.verify(dict(self.sample, checkpoint="\n".join(lines))), "signature")
        # Changed size in the checkpoint text: also a signature failure.
        lines = self.sample["checkpoint"].split("\n")
        lines[1] = "12"
        self.assertFails(self.verify(dict(self.sample, checkpoint="\n".join(lines), tree_size=12)), "signature")

    def test_wrong_key(self):
        self.assertFails(self.verify(self.sample, vkey=LOG.vkey), "signature")
        same_name = Signer("tally-log-e22e5f41", b"\x77" * 32)
        self.assertFails(self.verify(self.sample, vkey=same_name.vkey), "signature")

    def test_dropped_signature_line(self):
        text = self.sample["checkpoint"].split("\n\n")[0] + "\n"
        self.assertFails(self.verify(dict(self.sample, checkpoint=text + "\n")), "signature")
        self.assertFails(self.verify(dict(self.sample, checkpoint=text)), "signature")
        # Replaced by a line from another key only.
        other = Signer("tally-log-e22e5f41", b"\x77" * 32)
        self.assertFails(self.verify(dict(self.sample, checkpoint=text + "\n" + other.note_line(text))), "signature")

    def test_forged_extra_line_under_log_key(self):
        lines = self.sample["checkpoint"]
        sig = unb64(lines.rstrip("\n").split(" ")[-1])
        forged = f"\u2014 tally-log-e22e5f41 {b64(sig[:4] + bytes(64))}\n"
        self.assertFails(self.verify(dict(self.sample, checkpoint=lines + forged)), "signature")

    def test_id_mismatch(self):
        self.assertFails(self.verify(dict(self.sample, transfer_id="7")), "id mismatch")
        r = dict(self.sample)
        del r["transfer_id"]
        r["registration_id"] = "6"
        self.assertFails(self.verify(r), "id mismatch")

    def test_leaf_encoding(self):
        leaf = unb64(self.sample["leaf"])
        for bad in (leaf[:-1], leaf + b"\x00", b"\x01\x02" + leaf[2:], b"\x03" + leaf[1:], b""):
            with self.subTest(leaf=bad[:2].hex()):
                self.assertFails(self.verify(dict(self.sample, leaf=b64(bad))), "leaf encoding")

    def test_malformed_receipts(self):
        s = self.sample
        r = dict(s)
        del r["transfer_id"]
        cases = [
            r, dict(s, registration_id="6"), dict(s, leaf_index=True), dict(s, leaf_index=5.0),
            dict(s, tree_size=-1), dict(s, tree_size=2**63), dict(s, leaf="not base64!"),
            dict(s, leaf=s["leaf"] + "="), dict(s, inclusion_path="x"),
            dict(s, inclusion_path=s["inclusion_path"] + [b64(b"x" * 31)]),
            dict(s, inclusion_path=[s["inclusion_path"][0]] * 65), dict(s, transfer_id="06"),
            dict(s, transfer_id=" 6"), dict(s, transfer_id=str(2**128)), dict(s, checkpoint=5),
        ]
        for i, case in enumerate(cases):
            with self.subTest(case=i):
                self.assertFails(self.verify(case), "receipt")
        self.assertOk(self.verify(dict(s, transfer_id=6)), SAMPLE_OK)

    def test_bad_json_files(self):
        path = os.path.join(self.tmp, "bad.json")
        for content in (b"{", b"[]", b"\xff\xfe", b'{"a": 1, "a": 2}', b'{"a": NaN}', b"[" * 100000):
            with self.subTest(content=content[:10]):
                with open(path, "wb") as fh:
                    fh.write(content)
                self.assertFails(run_main(["receipt", path, "--vkey", self.sample_vkey]), "receipt")

    def test_file_size_bound(self):
        r = dict(self.sample, padding="x" * tv.MAX_FILE_BYTES)
        self.assertFails(self.verify(r), "receipt")

    def test_note_size_bound(self):
        filler = "".join(f"\u2014 filler.example/{i} {b64(bytes(4) + bytes(2000))}\n" for i in range(70))
        big = self.sample["checkpoint"] + filler
        self.assertGreater(len(big.encode()), tv.MAX_NOTE_BYTES)
        self.assertFails(self.verify(dict(self.sample, checkpoint=big)), "signature")

    def test_witness_required_but_absent(self):
        self.assertFails(self.verify(self.sample, extra=["--witness-vkey", WITNESS1.vkey]), "cosignature")


class BuiltLogTest(ReceiptTestBase):
    """Receipts for a log built and signed inside the test."""

    def setUp(self):
        super().setUp()
        subject = hashlib.sha256(b"invoice.pdf").digest()
        self.leaves = []
        for i in range(13):
            if i % 3 == 2:
                self.leaves.append(encode_registration(100 + i, 1 + i % 4, subject, 5000 + i,
                                                       reference=b"REF-%d" % i if i % 2 else b""))
            else:
                self.leaves.append(encode_transfer(i + 1, 1001, 2000 + i, 10 * i, currency=b"EUR"))
        self.subject = subject

    def receipt(self, index, size=13, **kw):
        leaf = tv.decode_leaf(self.leaves[index])
        field = "transfer_id" if isinstance(leaf, tv.TransferLeaf) else "registration_id"
        return make_receipt(self.leaves, index, size, field, str(leaf.id), **kw)

    def test_every_leaf_every_size(self):
        for size in range(1, 14):
            for index in range(size):
                with self.subTest(index=index, size=size):
                    self.assertOk(self.verify(self.receipt(index, size), vkey=LOG.vkey))

    def test_registration_summary(self):
        self.assertOk(self.verify(dict(self.receipt(5), kind="registration"), vkey=LOG.vkey),
                      f'ok: registration 105 (merchant QR code, subject sha256:{self.subject.hex()}, '
                      f'registrant 5005, reference "REF-5") is leaf 5 of example.test/log at size 13')
        self.assertOk(self.verify(self.receipt(2), vkey=LOG.vkey),
                      f"ok: registration 102 (e-invoice, subject sha256:{self.subject.hex()}, "
                      f"registrant 5002) is leaf 2 of example.test/log at size 13")
        self.assertOk(self.verify(self.receipt(4), vkey=LOG.vkey),
                      "ok: transfer 5 (amount 40 EUR, account 1001 -> 2004) is leaf 4 of example.test/log at size 13")

    def test_registration_id_mismatch(self):
        r = self.receipt(5)
        self.assertFails(self.verify(dict(r, registration_id="106"), vkey=LOG.vkey), "id mismatch")
        r2 = dict(r, transfer_id="105")
        del r2["registration_id"]
        self.assertFails(self.verify(r2, vkey=LOG.vkey), "id mismatch")

    def _single_leaf_receipt(self, leaf: bytes, field: str, id_value: str) -> dict:
        return make_receipt([leaf], 0, 1, field, id_value)

    def test_logged_but_malformed_leaves(self):
        subject = self.subject
        cases = [
            ("registration_id", encode_registration(1, 5, subject, 1)),                  # unknown kind
            ("registration_id", encode_registration(1, 0, subject, 1)),
            ("registration_id", encode_registration(1, 1, subject, 1, b"x" * 65)),       # too long
            ("registration_id", encode_registration(1, 1, subject, 1, b"ab\x07")),       # not printable
            ("registration_id", encode_registration(1, 1, subject, 1, b"abc", ref_len=2)),
            ("registration_id", encode_registration(1, 1, subject, 1, b"abc", ref_len=4)),
            ("registration_id", encode_registration(1, 1, subject, 1, version=2)),
            ("registration_id", encode_registration(1, 1, subject[:31], 1)),
            ("transfer_id", encode_transfer(1, 2, 3, 4, version=0)),
            ("transfer_id", encode_transfer(1, 2, 3, 4, currency=b"C\x00Y")),
            ("transfer_id", encode_transfer(1, 2, 3, 4, leaf_type=0x00)),
        ]
        for i, (field, leaf) in enumerate(cases):
            with self.subTest(case=i):
                self.assertFails(self.verify(self._single_leaf_receipt(leaf, field, "1"), vkey=LOG.vkey),
                                 "leaf encoding")
        ok = encode_registration(1, 4, subject, 1, b"x" * 64)
        self.assertOk(self.verify(self._single_leaf_receipt(ok, "registration_id", "1"), vkey=LOG.vkey))
        big_id = 2**128 - 1
        ok = encode_transfer(big_id, 2, 3, 2**128 - 1)
        self.assertOk(self.verify(self._single_leaf_receipt(ok, "transfer_id", str(big_id)), vkey=LOG.vkey))

    def test_cosigned_checkpoint(self):
        r = self.receipt(7, witnesses=(WITNESS1, WITNESS2))
        self.assertOk(self.verify(r, vkey=LOG.vkey))
        code, out, _ = self.verify(r, vkey=LOG.vkey, extra=["--witness-vkey", WITNESS1.vkey])
        self.assertEqual(code, 0)
        self.assertIn("; cosigned by witness.example/w1 at 2023-11-14T22:13:20Z", out)
        self.assertOk(self.verify(r, vkey=LOG.vkey, extra=["--witness-vkey", WITNESS1.vkey,
                                                           "--witness-vkey", WITNESS2.vkey]))
        # A required witness that did not cosign.
        w3 = Signer("witness.example/w3", b"\x88" * 32, tv.SIG_TYPE_COSIGNATURE_V1)
        self.assertFails(self.verify(r, vkey=LOG.vkey, extra=["--witness-vkey", WITNESS1.vkey,
                                                              "--witness-vkey", w3.vkey]), "cosignature")
        # A witness key of the right name but another public key.
        w1_other = Signer(WITNESS1.name, b"\x99" * 32, tv.SIG_TYPE_COSIGNATURE_V1)
        self.assertFails(self.verify(r, vkey=LOG.vkey, extra=["--witness-vkey", w1_other.vkey]), "cosignature")

    def test_bad_cosignatures(self):
        text = checkpoint_text(LOG.name, 13, mth(self.leaves))
        base = self.receipt(3)
        good_line = WITNESS1.cosignature_line(text, 1_700_000_000)
        blob = unb64(good_line.rstrip("\n").split(" ")[-1])
        kid, ts, sig = blob[:4], blob[4:12], blob[12:]
        # Timestamp changed after signing.
        changed_ts = kid + (int.from_bytes(ts, "big") + 1).to_bytes(8, "big") + sig
        # Signed as a plain note signature instead of a cosignature/v1 message.
        plain = kid + ts + ed25519_sign(WITNESS1.seed, text.encode())
        # Cosignature over a different checkpoint.
        other_text = checkpoint_text(LOG.name, 12, mth(self.leaves[:12]))
        other = unb64(WITNESS1.cosignature_line(other_text, 1_700_000_000).rstrip("\n").split(" ")[-1])
        # Timestamp >= 2^63, and wrong length.
        huge = kid + (2**63).to_bytes(8, "big") + sig
        short = kid + sig
        for i, bad in enumerate((changed_ts, plain, other, huge, short)):
            with self.subTest(case=i):
                note = base["checkpoint"] + f"\u2014 {WITNESS1.name} {b64(bad)}\n"
                self.assertFails(self.verify(dict(base, checkpoint=note), vkey=LOG.vkey,
                                             extra=["--witness-vkey", WITNESS1.vkey]), "cosignature")
                # Without requiring that witness, the line belongs to an unknown key.
                self.assertOk(self.verify(dict(base, checkpoint=note), vkey=LOG.vkey))

    def test_origin(self):
        other_origin = Signer("example.test/other-log-name", LOG.seed)
        r = make_receipt(self.leaves, 0, 13, "transfer_id", "1")
        # Signed by LOG's key but under a different key name than the origin.
        text = checkpoint_text(LOG.name, 13, mth(self.leaves))
        r["checkpoint"] = signed_note(text, other_origin.note_line(text))
        self.assertFails(self.verify(r, vkey=other_origin.vkey), "checkpoint")
        self.assertOk(self.verify(r, vkey=other_origin.vkey, extra=["--origin", LOG.name]))

    def test_signed_but_malformed_checkpoint(self):
        root = b64(mth(self.leaves))
        for text in (f"{LOG.name}\n013\n{root}\n", f"{LOG.name}\n13\n", f"{LOG.name}\n13\n{root[:-4]}\n"):
            with self.subTest(text=text):
                r = dict(self.receipt(0), checkpoint=signed_note(text, LOG.note_line(text)))
                self.assertFails(self.verify(r, vkey=LOG.vkey), "checkpoint")
        # Extension lines are allowed (and signed).
        text = checkpoint_text(LOG.name, 13, mth(self.leaves), ["extension: 1"])
        r = dict(self.receipt(0), checkpoint=signed_note(text, LOG.note_line(text)))
        self.assertOk(self.verify(r, vkey=LOG.vkey))


class ConsistencyTest(ReceiptTestBase):
    def setUp(self):
        super().setUp()
        self.leaves = [encode_transfer(i + 1, 1, 2, i) for i in range(19)]

    def note(self, size, signer=LOG, witnesses=()):
        text = checkpoint_text(signer.name, size, mth(self.leaves[:size]))
        return signed_note(text, signer.note_line(text),
                           *[w.cosignature_line(text, 1_700_000_000) for w in witnesses])

    def file(self, m, n, proof=None, **kw):
        obj = {"old_checkpoint": self.note(m), "new_checkpoint": self.note(n),
               "proof": [b64(h) for h in (ref_proof(m, self.leaves[:n]) if proof is None else proof)]}
        obj.update(kw)
        return self.write(obj, "consistency.json")

    def check(self, path, vkey=None, extra=()):
        return run_main(["consistency", path, "--vkey", vkey or LOG.vkey, *extra])

    def test_valid_pairs(self):
        for m, n in ((0, 5), (1, 1), (1, 19), (3, 7), (4, 8), (6, 8), (7, 19), (16, 19), (19, 19), (2, 3)):
            with self.subTest(m=m, n=n):
                self.assertOk(self.check(self.file(m, n)),
                              f"ok: example.test/log at size {n} is an append-only extension of size {m}")

    def test_tampered(self):
        proof = ref_proof(5, self.leaves[:13])
        bad = list(proof)
        bad[1] = flipped(bad[1])
        self.assertFails(self.check(self.file(5, 13, bad)), "consistency proof")
        self.assertFails(self.check(self.file(5, 13, proof[:-1])), "consistency proof")
        self.assertFails(self.check(self.file(5, 13, proof + proof[:1])), "consistency proof")
        self.assertFails(self.check(self.file(13, 5, proof)), "consistency proof")
        self.assertFails(self.check(self.file(6, 13, proof)), "consistency proof")
        self.assertFails(self.check(self.file(7, 7, proof[:1])), "consistency proof")
        self.assertFails(self.check(self.file(5, 13, [proof[0]] * 65)), "consistency")
        # A checkpoint signed by another key.
        path = self.file(5, 13, new_checkpoint=self.note(13, signer=OTHER_LOG))
        self.assertFails(self.check(path), "signature")
        # Equal sizes with different roots (a fork): the other root signed by the log key.
        forked_text = checkpoint_text(LOG.name, 13, mth(self.leaves[:12] + [b"fork"]))
        path = self.file(13, 13, new_checkpoint=signed_note(forked_text, LOG.note_line(forked_text)))
        self.assertFails(self.check(path), "consistency proof")
        self.assertFails(run_main(["consistency", self.write({"old_checkpoint": "x"}), "--vkey", LOG.vkey]),
                         "consistency")

    def test_witness_on_new_checkpoint(self):
        path = self.file(3, 9, new_checkpoint=self.note(9, witnesses=(WITNESS1,)))
        self.assertOk(self.check(path, extra=["--witness-vkey", WITNESS1.vkey]))
        self.assertFails(self.check(self.file(3, 9), extra=["--witness-vkey", WITNESS1.vkey]), "cosignature")


class CliTest(ReceiptTestBase):
    def run_script(self, *args, cwd=None):
        return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                              cwd=cwd or self.tmp, timeout=60)

    def test_sample_from_other_cwd(self):
        p = self.run_script("receipt", SAMPLE_RECEIPT, "--vkey", self.sample_vkey)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, SAMPLE_OK + "\n", ""))

    def test_failure_exit_1(self):
        path = self.write(dict(self.sample, tree_size=12))
        p = self.run_script("receipt", path, "--vkey", "@" + SAMPLE_VKEY_FILE)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, "")
        self.assertTrue(p.stderr.startswith("error: size mismatch: "))
        self.assertEqual(p.stderr.count("\n"), 1)

    def test_usage_errors_exit_2(self):
        name, kid, mat = self.sample_vkey.split("+", 2)
        cases = [
            [],
            ["receipt"],
            ["receipt", SAMPLE_RECEIPT],
            ["verify", SAMPLE_RECEIPT, "--vkey", self.sample_vkey],
            ["receipt", SAMPLE_RECEIPT, "--vkey", "garbage"],
            ["receipt", SAMPLE_RECEIPT, "--vkey", f"{name}+00000000+{mat}"],
            ["receipt", SAMPLE_RECEIPT, "--vkey", "@" + os.path.join(self.tmp, "missing.vkey")],
            ["receipt", os.path.join(self.tmp, "missing.json"), "--vkey", self.sample_vkey],
            ["receipt", SAMPLE_RECEIPT, "--vkey", self.sample_vkey, "--witness-vkey", self.sample_vkey],
            ["receipt", SAMPLE_RECEIPT, "--vkey", self.sample_vkey, "--bogus"],
            ["consistency", SAMPLE_RECEIPT],
        ]
        for args in cases:
            with self.subTest(args=args):
                code, out, err = run_main(args)
                self.assertEqual(code, 2, err)
                self.assertEqual(out, "")
                self.assertIn("error: ", err)
        p = self.run_script("receipt", SAMPLE_RECEIPT, "--vkey", "garbage")
        self.assertEqual(p.returncode, 2)


if __name__ == "__main__":
    unittest.main()
