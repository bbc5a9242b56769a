"""Two-party SM2 (crypto/sm2_2p.py): key generation, signing, decryption, on both backends.

No public test vectors exist for two-party SM2, so every joint signature is checked with the
ordinary SM2 verifier (ours, both backends) and, where marked, the OpenSSL 3 CLI with distid;
the known-answer test pins a signature made with fixed shares and nonces *and* derives it
independently as a plain SM2 signature with d = (d1 d2)^-1 - 1 and k = w2 + d2^-1 w1.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebank_auth import errors
from ebank_auth.crypto import _asn1, _backend, sm2, sm2_2p
from ebank_auth.crypto.algorithms import SignatureAlgorithm
from ebank_auth.crypto.keys import SigningKey
from ebank_auth.crypto.sm2_2p import (
    DecryptRequest,
    DecryptResponse,
    KeygenConfirm,
    KeygenRequest,
    KeygenResponse,
    SchnorrProof,
    SignChallenge,
    SignRequest,
    SignResponse,
)
from ebank_auth.crypto.x509 import build_csr

BACKENDS = _backend.available_sm2_backends()
CURVE = sm2.CURVE
N, P = CURVE.n, CURVE.p
G = CURVE.g
DISTID = "distid:1234567812345678"
MSG = b"transfer 100.00 CNY to 6217001122334455"

# ---- known answer: fixed shares, nonces and proof nonces (session ids stay random: they
# change the proofs, never the key or the signature)
D1 = 0x1F2E3D4C5B6A79880102030405060708090A0B0C0D0E0F101112131415161718
D2 = 0x6B5A49382716050403020100FFEEDDCCBBAA99887766554433221100A1B2C3D4
W1 = 0x0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF
W2 = 0x7EDCBA98765432107EDCBA98765432107EDCBA98765432107EDCBA9876543210
K_S = 0x11111111111111111111111111111111111111111111111111111111111111
K_P = 0x2222222222222222222222222222222222222222222222222222222222222222
KAT_PUBLIC = (
    "04d1434c615f3f80dab27add4673b70dff29a9cc38d6d51b6d39b72747806d71a6"
    "7ee4b5c5ee5abb8cfc00536e8fe36bfa11005d055d9b070ef028f1097bec277e"
)
KAT_SIGNATURE = (
    "304502200c7672d0c15e592c0af6bfcbad6e2a7514df5b838d478f07c83febdbadc3fe77"
    "02210092e908d80d5d22f71d0e4e7e9cb3f0aaf4070aec0b6b5020a03a04b9cfac0361"
)


@cache
def _shares(backend: str) -> tuple[sm2_2p.PhoneShare, sm2_2p.ServerShare, sm2.SM2PublicKey]:
    return sm2_2p.local_keygen(backend=backend)


def _be(name: str) -> Any:
    return _backend.sm2_backend(name)


def _neg(pt: tuple[int, int]) -> tuple[int, int]:
    return (pt[0], (P - pt[1]) % P)


# ================================================================= known answers
@pytest.mark.parametrize("backend", BACKENDS)
def test_known_answer_with_fixed_shares_and_nonces(backend: str) -> None:
    with sm2_2p._fixed_scalars([D1, D2, K_S, K_P]):
        phone, server, pub = sm2_2p.local_keygen(backend=backend)
    assert pub.to_bytes().hex() == KAT_PUBLIC
    assert phone.public_key == server.public_key == pub
    with sm2_2p._fixed_scalars([W1, K_P, W2]):
        sig = sm2_2p.local_sign(phone, server, MSG)
    assert sig.hex() == KAT_SIGNATURE
    # independently: the same signature is plain SM2 with d and k derived from the shares
    d = pow(D1 * D2, -1, N) - 1
    k = (W2 + pow(D2, -1, N) * W1) % N
    plain = sm2.SM2PrivateKey(d, backend=backend)
    assert plain.public_key() == pub
    with sm2._deterministic_k(k, backend) as sign:
        assert sign(plain.to_bytes(), sm2.compute_e(pub, MSG)) == sig
    for name in BACKENDS:
        pub.with_backend(name).verify(sig, MSG)


def test_backends_agree_message_for_message(monkeypatch: pytest.MonkeyPatch) -> None:
    if len(BACKENDS) < 2:
        pytest.skip("only one SM2 backend here")
    seen: dict[str, list[bytes]] = {}
    for backend in BACKENDS:
        counter = iter(range(1, 10))
        monkeypatch.setattr(sm2_2p, "_new_session_id", lambda c=counter: bytes([next(c)]) * 32)
        with sm2_2p._fixed_scalars([D1, D2, K_S, K_P, W1, K_P, W2]):
            req, ps = sm2_2p.phone_keygen_begin(backend=backend)
            resp, ss = sm2_2p.server_keygen_respond(req, backend=backend)
            confirm, phone = sm2_2p.phone_keygen_complete(ps, resp)
            server = sm2_2p.server_keygen_complete(ss, confirm)
            challenge, sst = sm2_2p.server_sign_begin(server, MSG)
            sreq, pst = sm2_2p.phone_sign_begin(phone, challenge, MSG)
            sresp = sm2_2p.server_sign_complete(sst, sreq)
            sig = sm2_2p.phone_sign_complete(pst, sresp)
        assert sst.e == sm2.compute_e(phone.public_key, MSG)
        seen[backend] = [m.to_bytes() for m in (req, resp, confirm, sreq, sresp)] + [sig]
    assert seen["openssl"] == seen["pure"]
    assert seen["openssl"][-1].hex() == KAT_SIGNATURE


@pytest.mark.skipif(len(BACKENDS) < 2, reason="only one SM2 backend here")
def test_parties_on_different_backends_interoperate() -> None:
    req, ps = sm2_2p.phone_keygen_begin(backend="pure")
    resp, ss = sm2_2p.server_keygen_respond(req, backend="openssl")
    confirm, phone = sm2_2p.phone_keygen_complete(ps, resp)
    server = sm2_2p.server_keygen_complete(ss, confirm)
    assert phone.backend == "pure" and server.backend == "openssl"
    sig = sm2_2p.local_sign(phone, server, MSG)
    phone.public_key.verify(sig, MSG)
    ct = server.public_key.encrypt(b"session key")
    assert sm2_2p.local_decrypt(phone, server, ct) == b"session key"


@pytest.mark.parametrize("backend", BACKENDS)
def test_signature_format_is_sm2s(backend: str) -> None:
    phone, server, pub = _shares(backend)
    sig = sm2_2p.local_sign(phone, server, MSG, uid=b"alice@bank")
    r, s = sm2.signature_to_rs(sig)
    assert sm2.signature_from_rs(r, s) == sig  # canonical DER SEQUENCE{r, s}
    pub.verify(sig, MSG, uid=b"alice@bank")
    with pytest.raises(errors.InvalidSignature):
        pub.verify(sig, MSG)  # the ID is part of e


# ================================================================= OpenSSL CLI
@pytest.mark.openssl_cli
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
@pytest.mark.parametrize("backend", BACKENDS)
def test_joint_signature_verifies_in_openssl_and_openssl_ciphertext_decrypts(
    backend: str, tmp_path: Path
) -> None:
    phone, server, pub = _shares(backend)
    (tmp_path / "pub.pem").write_bytes(pub.to_pem())
    (tmp_path / "msg").write_bytes(MSG)
    (tmp_path / "sig").write_bytes(sm2_2p.local_sign(phone, server, MSG))
    out = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin",
         "-inkey", "pub.pem", "-in", "msg", "-sigfile", "sig", "-pkeyopt", DISTID],
        cwd=tmp_path, check=True, capture_output=True,
    ).stdout  # fmt: skip
    assert b"Signature Verified Successfully" in out
    # a bit flipped in the message: OpenSSL refuses (the check above can fail)
    (tmp_path / "msg").write_bytes(MSG[:-1] + b"6")
    bad = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin",
         "-inkey", "pub.pem", "-in", "msg", "-sigfile", "sig", "-pkeyopt", DISTID],
        cwd=tmp_path, capture_output=True,
    )  # fmt: skip
    assert bad.returncode != 0
    ct = subprocess.run(
        ["openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", "pub.pem"],
        cwd=tmp_path, input=b"from openssl", check=True, capture_output=True,
    ).stdout  # fmt: skip
    assert sm2_2p.local_decrypt(phone, server, ct) == b"from openssl"


@pytest.mark.openssl_cli
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_csr_signed_by_the_joint_key(tmp_path: Path) -> None:
    phone, server, pub = _shares(BACKENDS[0])
    key = sm2_2p.TwoPartySigningKey(server, sm2_2p.local_phone(phone))
    assert isinstance(key, SigningKey)
    csr = build_csr("CN=Zhang San,O=Example Bank,C=CN", key, key_usage=["digital_signature"])
    csr.verify()  # proof of possession with the joint key
    assert csr.public_key == pub
    (tmp_path / "r.csr").write_bytes(csr.to_pem())
    subprocess.run(
        ["openssl", "req", "-in", "r.csr", "-verify", "-vfyopt", DISTID, "-noout"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip


# ================================================================= decryption
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", list(sm2.CipherFormat))
def test_decrypt_round_trips_against_sm2_encrypt(backend: str, fmt: sm2.CipherFormat) -> None:
    phone, server, pub = _shares(backend)
    for plain in (b"k", b"session key 0123456789abcdef", bytes(range(256)) * 3):
        ct = pub.encrypt(plain, fmt=fmt)
        assert sm2_2p.local_decrypt(phone, server, ct, fmt) == plain


@pytest.mark.parametrize("backend", BACKENDS)
def test_decrypt_fails_closed(backend: str) -> None:
    phone, server, pub = _shares(backend)
    ct = pub.encrypt(b"secret payload", fmt=sm2.CipherFormat.C1C3C2)
    for i in (65, 65 + 31, 65 + 32, len(ct) - 1):  # C3 and C2 bytes
        bad = bytearray(ct)
        bad[i] ^= 1
        with pytest.raises(errors.DecryptionError):
            sm2_2p.local_decrypt(phone, server, bytes(bad), sm2.CipherFormat.C1C3C2)
    other_phone, other_server, _ = sm2_2p.local_keygen(backend=backend)
    with pytest.raises(errors.DecryptionError):  # a share of another key
        sm2_2p.local_decrypt(other_phone, server, pub.encrypt(b"x"))
    with pytest.raises(errors.DecryptionError):
        sm2_2p.local_decrypt(phone, other_server, pub.encrypt(b"x"))
    with pytest.raises(errors.DecryptionError):
        sm2_2p.phone_decrypt_begin(phone, b"\x30\x03\x02\x01\x01")
    # the server alone sees only a blinded point: T1 differs from C1 and between sessions
    ct = pub.encrypt(b"x")
    c1 = _asn1.decode_sm2_cipher(ct)[:2]
    r1, _ = sm2_2p.phone_decrypt_begin(phone, ct)
    r2, _ = sm2_2p.phone_decrypt_begin(phone, ct)
    assert r1.point != c1 and r2.point != c1 and r1.point != r2.point


def test_decrypt_state_consumed_when_c3_fails() -> None:
    phone, server, pub = _shares(BACKENDS[0])
    ct = bytearray(pub.encrypt(b"payload", fmt=sm2.CipherFormat.C1C3C2))
    ct[-1] ^= 1
    req, state = sm2_2p.phone_decrypt_begin(phone, bytes(ct), sm2.CipherFormat.C1C3C2)
    resp = sm2_2p.server_decrypt(server, req)
    with pytest.raises(errors.DecryptionError):
        sm2_2p.phone_decrypt_complete(state, resp)
    assert state.consumed
    with pytest.raises(errors.SessionAlreadyUsed):
        sm2_2p.phone_decrypt_complete(state, resp)


# ================================================================= received points
def _order2_point_of_another_curve() -> tuple[int, int]:
    # (x, 0) lies on y^2 = x^3 + ax + b' with b' = -(x^3 + ax): a point of order 2 there
    return (5, 0)


BAD_POINTS: dict[str, Any] = {
    "off the curve": (G[0], (G[1] + 1) % P),
    "origin (identity stand-in)": (0, 0),
    "x out of range": (G[0] + P, G[1]),
    "negative coordinate": (-G[0], G[1]),
    "order 2 on another curve": _order2_point_of_another_curve(),
    "not a point": None,
    "bool coordinates": (True, False),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", list(BAD_POINTS), ids=list(BAD_POINTS))
def test_every_received_point_is_validated_and_state_is_unchanged(backend: str, bad: str) -> None:
    pt = BAD_POINTS[bad]
    refused = (errors.InvalidProtocolMessage,)
    # keygen: P1 at the server
    req, ps = sm2_2p.phone_keygen_begin(backend=backend)
    with pytest.raises(refused):
        sm2_2p.server_keygen_respond(replace(req, phone_point=pt), backend=backend)
    resp, ss = sm2_2p.server_keygen_respond(req, backend=backend)
    # P2 at the phone
    with pytest.raises(refused):
        sm2_2p.phone_keygen_complete(ps, replace(resp, server_point=pt))
    assert not ps.consumed
    confirm, phone = sm2_2p.phone_keygen_complete(ps, resp)
    # the joint key at the server
    with pytest.raises(refused):
        sm2_2p.server_keygen_complete(ss, replace(confirm, public_point=pt))
    assert not ss.consumed
    server = sm2_2p.server_keygen_complete(ss, confirm)
    # Q1 at the server
    challenge, sst = sm2_2p.server_sign_begin(server, MSG)
    sreq, pst = sm2_2p.phone_sign_begin(phone, challenge, MSG)
    with pytest.raises(refused):
        sm2_2p.server_sign_complete(sst, replace(sreq, nonce_point=pt))
    assert not sst.consumed
    sm2_2p.phone_sign_complete(pst, sm2_2p.server_sign_complete(sst, sreq))
    # T1 at the server, T2 at the phone, C1 in the ciphertext
    ct = phone.public_key.encrypt(b"k")
    dreq, dst = sm2_2p.phone_decrypt_begin(phone, ct)
    with pytest.raises(refused):
        sm2_2p.server_decrypt(server, replace(dreq, point=pt))
    dresp = sm2_2p.server_decrypt(server, dreq)
    with pytest.raises(refused):
        sm2_2p.phone_decrypt_complete(dst, replace(dresp, point=pt))
    assert not dst.consumed
    assert sm2_2p.phone_decrypt_complete(dst, dresp) == b"k"
    if isinstance(pt, tuple) and all(isinstance(v, int) and 0 <= v < 2**256 for v in pt):
        _x, _y, c3, c2 = _asn1.decode_sm2_cipher(ct)
        with pytest.raises(errors.DecryptionError):
            sm2_2p.phone_decrypt_begin(phone, _asn1.encode_sm2_cipher(*pt, c3, c2))


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_point_validation_agrees_with_the_arithmetic(backend: str) -> None:
    be = _be(backend)
    assert be.point_valid(*G)
    for name, pt in BAD_POINTS.items():
        if isinstance(pt, tuple) and all(isinstance(v, int) and v >= 0 for v in pt):
            assert not be.point_valid(*pt), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_trivial_and_reflected_points_are_refused(backend: str) -> None:
    be = _be(backend)
    for pt in (G, _neg(G)):
        req, _ = sm2_2p.phone_keygen_begin(backend=backend)
        with pytest.raises(errors.InvalidProtocolMessage, match="±G"):
            sm2_2p.server_keygen_respond(replace(req, phone_point=pt), backend=backend)
    req, ps = sm2_2p.phone_keygen_begin(backend=backend)
    resp, _ss = sm2_2p.server_keygen_respond(req, backend=backend)
    for pt in (G, _neg(G), req.phone_point, be.point_negate(req.phone_point)):
        with pytest.raises(errors.InvalidProtocolMessage):
            sm2_2p.phone_keygen_complete(ps, replace(resp, server_point=pt))
    assert not ps.consumed


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("factor", [1, 2, -2 % N], ids=["P=O", "P=G", "P=-3G"])
def test_a_server_steering_the_joint_key_is_refused(backend: str, factor: int) -> None:
    """A server that knew d1 could pick P2 = [factor*d1]G (with a valid proof) to make
    P = [factor]G - G degenerate; the phone refuses O and ±G."""
    be = _be(backend)
    req, ps = sm2_2p.phone_keygen_begin(backend=backend)
    resp, _ = sm2_2p.server_keygen_respond(req, backend=backend)
    x2 = factor * ps._d1.value() % N
    p2 = be.mul_g(x2)
    transcript = sm2_2p._keygen_transcript(
        req.phone_session_id, resp.server_session_id, req.phone_point, p2
    )
    evil = replace(
        resp, server_point=p2, proof=sm2_2p._prove(be, x2, p2, transcript, sm2_2p._Role.SERVER)
    )
    if factor == -2 % N:  # P = -3G is not degenerate: the protocol accepts it (control case)
        _, share = sm2_2p.phone_keygen_complete(ps, evil)
        assert share.public_key.to_bytes()[1:33] == be.mul_g(N - 3)[0].to_bytes(32, "big")
        return
    with pytest.raises(errors.InvalidProtocolMessage, match="joint public key"):
        sm2_2p.phone_keygen_complete(ps, evil)
    assert not ps.consumed


# ================================================================= proofs
def _flip_proof(proof: SchnorrProof, which: str) -> SchnorrProof:
    return replace(proof, **{which: (getattr(proof, which) + 1) % N})


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("which", ["c", "z"])
def test_tampered_proofs_are_refused_without_state_change(backend: str, which: str) -> None:
    req, ps = sm2_2p.phone_keygen_begin(backend=backend)
    resp, ss = sm2_2p.server_keygen_respond(req, backend=backend)
    with pytest.raises(errors.InvalidProof):
        sm2_2p.phone_keygen_complete(ps, replace(resp, proof=_flip_proof(resp.proof, which)))
    # the proof is bound to the transcript: another server session id breaks it
    with pytest.raises(errors.InvalidProtocolMessage):
        sm2_2p.phone_keygen_complete(ps, replace(resp, phone_session_id=b"\x00" * 32))
    with pytest.raises(errors.InvalidProof):
        sm2_2p.phone_keygen_complete(ps, replace(resp, server_session_id=b"\x00" * 32))
    assert not ps.consumed
    confirm, phone = sm2_2p.phone_keygen_complete(ps, resp)
    with pytest.raises(errors.InvalidProof):
        sm2_2p.server_keygen_complete(ss, replace(confirm, proof=_flip_proof(confirm.proof, which)))
    with pytest.raises(errors.InvalidProof):  # the server's own proof replayed as the phone's
        sm2_2p.server_keygen_complete(ss, replace(confirm, proof=resp.proof))
    assert not ss.consumed
    server = sm2_2p.server_keygen_complete(ss, confirm)
    challenge, sst = sm2_2p.server_sign_begin(server, MSG)
    sreq, pst = sm2_2p.phone_sign_begin(phone, challenge, MSG)
    with pytest.raises(errors.InvalidProof):
        sm2_2p.server_sign_complete(sst, replace(sreq, proof=_flip_proof(sreq.proof, which)))
    assert not sst.consumed
    sm2_2p.phone_sign_complete(pst, sm2_2p.server_sign_complete(sst, sreq))


@pytest.mark.parametrize("backend", BACKENDS)
def test_keygen_confirm_with_another_joint_key_is_refused(backend: str) -> None:
    req, ps = sm2_2p.phone_keygen_begin(backend=backend)
    resp, ss = sm2_2p.server_keygen_respond(req, backend=backend)
    confirm, _ = sm2_2p.phone_keygen_complete(ps, resp)
    with pytest.raises(errors.InvalidProtocolMessage, match="different joint public key"):
        sm2_2p.server_keygen_complete(ss, replace(confirm, public_point=G))
    assert not ss.consumed


@pytest.mark.parametrize("backend", BACKENDS)
def test_server_refuses_when_the_phone_signs_another_message(backend: str) -> None:
    """The server derives e from what it recorded; the phone's proof binds its own e."""
    phone, server, _ = _shares(backend)
    challenge, sst = sm2_2p.server_sign_begin(server, MSG)
    sreq, _ = sm2_2p.phone_sign_begin(phone, challenge, MSG.replace(b"100.00", b"900.00"))
    with pytest.raises(errors.InvalidProof, match="message this server recorded"):
        sm2_2p.server_sign_complete(sst, sreq)
    sreq, _ = sm2_2p.phone_sign_begin(phone, challenge, MSG, uid=b"another id")
    with pytest.raises(errors.InvalidProof):
        sm2_2p.server_sign_complete(sst, sreq)
    with pytest.raises(errors.CryptoError):  # an ID that is not bytes or str
        sm2_2p.phone_sign_begin(phone, challenge, MSG, uid=5)  # type: ignore[arg-type]
    moved = phone.with_backend("pure")
    assert isinstance(moved, sm2_2p.PhoneShare) and moved.backend == "pure"
    assert not sst.consumed


# ================================================================= state consumed once
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_state_is_consumed_exactly_once(backend: str) -> None:
    req, ps = sm2_2p.phone_keygen_begin(backend=backend)
    resp, ss = sm2_2p.server_keygen_respond(req, backend=backend)
    confirm, phone = sm2_2p.phone_keygen_complete(ps, resp)
    with pytest.raises(errors.SessionAlreadyUsed):
        sm2_2p.phone_keygen_complete(ps, resp)
    server = sm2_2p.server_keygen_complete(ss, confirm)
    with pytest.raises(errors.SessionAlreadyUsed):
        sm2_2p.server_keygen_complete(ss, confirm)
    challenge, sst = sm2_2p.server_sign_begin(server, MSG)
    sreq, pst = sm2_2p.phone_sign_begin(phone, challenge, MSG)
    sresp = sm2_2p.server_sign_complete(sst, sreq)
    with pytest.raises(errors.SessionAlreadyUsed):  # a replayed request: no second s1
        sm2_2p.server_sign_complete(sst, sreq)
    sm2_2p.phone_sign_complete(pst, sresp)
    with pytest.raises(errors.SessionAlreadyUsed):  # a second response: w1 is never reused
        sm2_2p.phone_sign_complete(pst, sresp)
    dreq, dst = sm2_2p.phone_decrypt_begin(phone, phone.public_key.encrypt(b"k"))
    dresp = sm2_2p.server_decrypt(server, dreq)
    sm2_2p.phone_decrypt_complete(dst, dresp)
    with pytest.raises(errors.SessionAlreadyUsed):
        sm2_2p.phone_decrypt_complete(dst, dresp)


def test_a_request_replayed_into_a_new_session_is_refused() -> None:
    phone, server, _ = _shares(BACKENDS[0])
    challenge, sst = sm2_2p.server_sign_begin(server, MSG)
    sreq, _ = sm2_2p.phone_sign_begin(phone, challenge, MSG)
    _, fresh = sm2_2p.server_sign_begin(server, MSG)
    with pytest.raises(errors.InvalidProtocolMessage, match="another session"):
        sm2_2p.server_sign_complete(fresh, sreq)
    with pytest.raises(errors.InvalidProof):  # session id rewritten: the proof binds it
        sm2_2p.server_sign_complete(fresh, replace(sreq, session_id=fresh.session_id))
    assert not fresh.consumed and not sst.consumed


def test_concurrent_completes_consume_once() -> None:
    phone, server, _ = _shares(BACKENDS[0])
    challenge, sst = sm2_2p.server_sign_begin(server, MSG)
    sreq, _ = sm2_2p.phone_sign_begin(phone, challenge, MSG)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def run() -> None:
        barrier.wait()
        try:
            sm2_2p.server_sign_complete(sst, sreq)
            results.append("ok")
        except errors.SessionAlreadyUsed:
            results.append("used")

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok"] + ["used"] * 7


# ================================================================= wrong shares
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_wrong_share_yields_a_signature_that_is_not_released(backend: str) -> None:
    phone, server, pub = _shares(backend)
    wrong_phone = sm2_2p.PhoneShare(
        int.from_bytes(phone.scalar_bytes(), "big") ^ 1, pub, backend=backend
    )
    with pytest.raises(errors.JointSignatureRefused):
        sm2_2p.local_sign(wrong_phone, server, MSG)
    wrong_server = sm2_2p.ServerShare(
        (int.from_bytes(server.scalar_bytes(), "big") + 1) % N, pub, backend=backend
    )
    with pytest.raises(errors.JointSignatureRefused):
        sm2_2p.local_sign(phone, wrong_server, MSG)
    # a server that alters s1 (or r): the phone refuses and burns its nonce
    challenge, sst = sm2_2p.server_sign_begin(server, MSG)
    sreq, pst = sm2_2p.phone_sign_begin(phone, challenge, MSG)
    sresp = sm2_2p.server_sign_complete(sst, sreq)
    with pytest.raises(errors.JointSignatureRefused):
        sm2_2p.phone_sign_complete(pst, replace(sresp, s1=sresp.s1 % (N - 1) + 1))
    assert pst.consumed
    with pytest.raises(errors.SessionAlreadyUsed):
        sm2_2p.phone_sign_complete(pst, sresp)
    # the error is also an InvalidSignature (callers catching that still refuse)
    assert issubclass(errors.JointSignatureRefused, errors.InvalidSignature)


def test_signing_key_adapter_refuses_a_bad_phone_and_other_algorithms() -> None:
    phone, server, _ = _shares(BACKENDS[0])

    def lazy_phone(challenge: SignChallenge, message: bytes, uid: bytes, exchange: Any) -> bytes:
        return sm2.generate_private_key().sign(message)  # never talks to the server

    def lying_phone(challenge: SignChallenge, message: bytes, uid: bytes, exchange: Any) -> bytes:
        request, _state = sm2_2p.phone_sign_begin(phone, challenge, message, uid)
        exchange(request)
        return sm2.generate_private_key().sign(message)

    with pytest.raises(errors.JointSignatureRefused, match="without a server round"):
        sm2_2p.TwoPartySigningKey(server, lazy_phone).sign_with(SignatureAlgorithm.SM2_SM3, MSG)
    with pytest.raises(errors.JointSignatureRefused, match="does not verify"):
        sm2_2p.TwoPartySigningKey(server, lying_phone).sign_with(SignatureAlgorithm.SM2_SM3, MSG)
    key = sm2_2p.TwoPartySigningKey(server, sm2_2p.local_phone(phone))
    with pytest.raises(errors.UnsupportedAlgorithm):
        key.sign_with(SignatureAlgorithm.SHA256_RSA, MSG)
    sig = key.sign_with(SignatureAlgorithm.SM2_SM3, MSG)
    key.public_key().verify(sig, MSG)
    with pytest.raises(errors.InvalidKey):
        sm2_2p.TwoPartySigningKey(phone, sm2_2p.local_phone(phone))  # type: ignore[arg-type]


# ================================================================= encodings and secrets
def _all_messages(backend: str) -> list[Any]:
    req, ps = sm2_2p.phone_keygen_begin(backend=backend)
    resp, ss = sm2_2p.server_keygen_respond(req, backend=backend)
    confirm, phone = sm2_2p.phone_keygen_complete(ps, resp)
    server = sm2_2p.server_keygen_complete(ss, confirm)
    challenge, sst = sm2_2p.server_sign_begin(server, MSG)
    sreq, _ = sm2_2p.phone_sign_begin(phone, challenge, MSG)
    sresp = sm2_2p.server_sign_complete(sst, sreq)
    dreq, _ = sm2_2p.phone_decrypt_begin(phone, phone.public_key.encrypt(b"k"))
    dresp = sm2_2p.server_decrypt(server, dreq)
    return [req, resp, confirm, challenge, sreq, sresp, dreq, dresp]


def test_messages_round_trip_canonically_and_refuse_bad_encodings() -> None:
    msgs = _all_messages(BACKENDS[0])
    assert len({type(m) for m in msgs}) == 8
    for m in msgs:
        raw = m.to_bytes()
        cls = type(m)
        assert cls.from_bytes(raw) == m and cls.from_bytes(raw).to_bytes() == raw
        assert raw[0] == sm2_2p.MessageType[_kind(cls)] and raw[1] == sm2_2p.PROTOCOL_VERSION
        for bad in (raw[:-1], raw + b"\x00", bytes([raw[0] ^ 0x40]) + raw[1:],
                    raw[:1] + b"\x09" + raw[2:]):  # fmt: skip
            with pytest.raises(errors.InvalidProtocolMessage):
                cls.from_bytes(bad)
        with pytest.raises(errors.InvalidProtocolMessage):
            cls.from_bytes("text")
    # a point must be uncompressed and on the curve; scalars below n
    req = msgs[0].to_bytes()
    with pytest.raises(errors.InvalidProtocolMessage, match="uncompressed"):
        KeygenRequest.from_bytes(req[:34] + b"\x02" + req[35:])
    with pytest.raises(errors.InvalidProtocolMessage, match="not a point"):
        KeygenRequest.from_bytes(req[:-1] + bytes([req[-1] ^ 1]))
    sresp = msgs[5].to_bytes()
    with pytest.raises(errors.InvalidProtocolMessage, match=r"\[1, n-1\]"):
        SignResponse.from_bytes(sresp[:34] + N.to_bytes(32, "big") + sresp[66:])
    with pytest.raises(errors.InvalidProtocolMessage, match=r"\[1, n-1\]"):
        SignResponse.from_bytes(sresp[:34] + bytes(32) + sresp[66:])
    with pytest.raises(errors.InvalidProtocolMessage):
        SignChallenge(b"short")


def _kind(cls: type) -> str:
    return {
        KeygenRequest: "KEYGEN_REQUEST",
        KeygenResponse: "KEYGEN_RESPONSE",
        KeygenConfirm: "KEYGEN_CONFIRM",
        SignChallenge: "SIGN_CHALLENGE",
        SignRequest: "SIGN_REQUEST",
        SignResponse: "SIGN_RESPONSE",
        DecryptRequest: "DECRYPT_REQUEST",
        DecryptResponse: "DECRYPT_RESPONSE",
    }[cls]


def test_shares_serialise_hide_their_secret_and_wipe() -> None:
    backend = BACKENDS[0]
    phone, server, pub = sm2_2p.local_keygen(backend=backend)
    for share, cls, other in (
        (phone, sm2_2p.PhoneShare, sm2_2p.ServerShare),
        (server, sm2_2p.ServerShare, sm2_2p.PhoneShare),
    ):
        secret_hex = share.scalar_bytes().hex()
        assert secret_hex not in repr(share).lower() and "<secret>" in repr(share)
        raw = share.to_bytes()
        assert isinstance(raw, bytearray) and len(raw) == 105
        loaded: Any = cls.from_bytes(raw)
        assert loaded.public_key == pub and loaded.scalar_bytes() == share.scalar_bytes()
        with pytest.raises(errors.InvalidKey, match="other share class"):
            other.from_bytes(raw)
        with pytest.raises(errors.InvalidKey):
            cls.from_bytes(bytes(raw[:-1]))
        with pytest.raises(errors.InvalidKey):
            cls.from_bytes(b"x" + bytes(raw[1:]))
        loaded.wipe()
        assert loaded.scalar_bytes() == bytearray(32)
    phone2 = sm2_2p.PhoneShare.from_bytes(phone.to_bytes())
    phone2.wipe()
    with pytest.raises(errors.InvalidKey, match="wiped"):
        sm2_2p.local_sign(phone2, server, MSG)
    for bad in (0, N, -1, True):
        with pytest.raises(errors.InvalidKey):
            sm2_2p.PhoneShare(bad, pub)
    # states never show secrets either
    _, ps = sm2_2p.phone_keygen_begin(backend=backend)
    assert repr(ps) == "<PhoneKeygenState open>"
    assert repr(ps._d1) == "<secret>"


def test_phone_share_holds_nothing_that_checks_a_guessed_share_offline() -> None:
    """PIN-wrapped d1 (phone keystore): a wrong d1 must not be detectable without the server."""
    phone, _, pub = _shares(BACKENDS[0])
    raw = phone.to_bytes()
    assert raw[8:40] == phone.scalar_bytes() and raw[40:] == pub.to_bytes()  # d1 and P only
    wrong = sm2_2p.PhoneShare.from_bytes(raw[:39] + bytes([raw[39] ^ 1]) + raw[40:])
    assert wrong.public_key == pub  # loads fine: nothing on the phone tells it apart


# ================================================================= Hypothesis
@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=15)
@given(message=st.binary(max_size=300), uid=st.binary(max_size=40), new_key=st.booleans())
def test_joint_signatures_always_verify_and_nonces_never_repeat(
    backend: str, message: bytes, uid: bytes, new_key: bool
) -> None:
    drawn: list[int] = []
    original: Callable[[], int] = sm2_2p._draw_scalar

    def spy() -> int:
        v = original()
        drawn.append(v)
        return v

    sm2_2p._draw_scalar = spy  # type: ignore[assignment]
    try:
        phone, server, pub = sm2_2p.local_keygen(backend=backend) if new_key else _shares(backend)
        sigs = [sm2_2p.local_sign(phone, server, message, uid=uid) for _ in range(2)]
        ct = pub.encrypt(message or b"\x00")
        assert sm2_2p.local_decrypt(phone, server, ct) == (message or b"\x00")
    finally:
        sm2_2p._draw_scalar = original  # type: ignore[assignment]
    for sig in sigs:
        pub.verify(sig, message, uid=uid)
        pub.with_backend("pure").verify(sig, message, uid=uid)
    assert sigs[0] != sigs[1]  # fresh nonces: the same message never gives the same (r, s)
    # every share, nonce and proof nonce drawn is distinct (2 x (w1, proof k, w2) + w)
    assert len(drawn) == len(set(drawn)) == (4 if new_key else 0) + 7


@pytest.mark.parametrize("backend", BACKENDS)
@given(a=st.integers(1, N - 1), b=st.integers(0, N - 1))
def test_raw_point_operations_agree_across_backends(backend: str, a: int, b: int) -> None:
    be, ref = _be(backend), _be("pure")
    pt = ref.mul_g(a)
    assert be.mul_g(a) == pt
    assert be.point_mul(b, pt) == ref.point_mul(b, pt) == (ref.mul_g(a * b) if b else None)
    assert be.point_mul_add(b, a, G) == ref.point_mul_add(b, a, G)
    assert be.point_add(pt, G) == (ref.mul_g(a + 1) if a + 1 < N else None)
    assert be.point_add(pt, be.point_negate(pt)) is None
    assert be.point_negate(pt) == _neg(pt) and be.point_valid(*pt)
