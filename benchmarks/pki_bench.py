"""PKI speed: SM2 chain validation and CMS verification vs the raw SM2 verifications.

Target (issue 3): validating a 3-certificate SM2 chain and verifying a CMS
SignedData cost at most 1.5x the summed SM2 verifications they need
(2 for the chain: leaf and intermediate; the trust anchor is not re-verified;
1 + 2 for a CMS message: the signature and the signer's chain).

Run:  .venv/bin/python benchmarks/pki_bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from ebank_auth.crypto import backend_info, cms, sm2, x509
from ebank_auth.crypto import keys as keys_module
from ebank_auth.crypto.x509 import certificate


def _per_call_ms(fn: Callable[[], object], rounds: int) -> float:
    start = time.process_time()
    for _ in range(rounds):
        fn()
    return (time.process_time() - start) / rounds * 1000


def _compare(
    fn: Callable[[], object], base: Callable[[], object], rounds: int, repeat: int = 7
) -> tuple[float, float, float]:
    """Interleave ``fn`` and its baseline (so machine load hits both alike); CPU time.

    Returns median ms/op of fn, median ms/op of base, median of the per-pair ratios.
    """
    fn_ms, base_ms, ratios = [], [], []
    for _ in range(repeat):
        b = _per_call_ms(base, rounds)
        f = _per_call_ms(fn, rounds)
        fn_ms.append(f)
        base_ms.append(b)
        ratios.append(f / b)
    return statistics.median(fn_ms), statistics.median(base_ms), statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    n = args.rounds

    keys = [sm2.generate_private_key() for _ in range(3)]
    root = x509.CertificateAuthority.create_root("CN=Bench Root,O=Bank,C=CN", keys[0])
    sub = root.create_intermediate("CN=Bench Issuing CA,O=Bank,C=CN", keys[1])
    leaf = sub.issue("CN=Bench User,O=Bank,C=CN", keys[2].public_key())
    message = b"transfer 1000.00 CNY to 6222000012345678; ref 20261122-0001" * 4
    signed = cms.sign(message, cms.Signer(keys[2], leaf, (sub.certificate,)))
    leaf_der, sub_der, root_der = leaf.der, sub.certificate.der, root.certificate.der

    # baseline: the SM2 verifications themselves, keys already loaded
    sub_pub, root_pub = sub.certificate.public_key, root.certificate.public_key
    leaf_pub = leaf.public_key

    def raw_chain() -> None:
        sub_pub.verify(leaf.signature, leaf.tbs_der)
        root_pub.verify(sub.certificate.signature, sub.certificate.tbs_der)

    attrs_sig = keys[2].sign(message)

    def raw_one() -> None:
        leaf_pub.verify(attrs_sig, message)

    def chain_objects() -> None:
        assert x509.validate_chain(leaf, [sub.certificate], [root.certificate]).valid

    def chain_from_der() -> None:
        assert x509.validate_chain(leaf_der, [sub_der], [root_der]).valid

    roots = [root.certificate]
    intermediates = [sub.certificate]

    def new_leaf_known_cas() -> None:
        # the common server case: the CA certificates are loaded once at start-up,
        # each request brings a leaf never seen before
        assert x509.validate_chain(leaf_der, intermediates, roots).valid

    def cms_verify() -> None:
        assert cms.validate(signed, trust_roots=roots).valid

    def raw_three() -> None:
        raw_chain()
        raw_one()

    def cold(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            certificate.clear_cache()
            keys_module._load_public_key_cached.cache_clear()
            return fn()

        return run

    rows = [
        ("validate_chain, 3 SM2 certs (parsed objects)", *_compare(chain_objects, raw_chain, n)),
        ("validate_chain, 3 SM2 certs (DER, warm cache)", *_compare(chain_from_der, raw_chain, n)),
        ("validate_chain, 3 SM2 certs (DER, cold)", *_compare(cold(chain_from_der), raw_chain, n)),
        (
            "validate_chain, new leaf DER, CAs loaded",
            *_compare(cold(new_leaf_known_cas), raw_chain, n),
        ),
        ("cms.verify, SM2 signer + chain (warm cache)", *_compare(cms_verify, raw_three, n)),
        ("cms.verify, SM2 signer + chain (cold)", *_compare(cold(cms_verify), raw_three, n)),
    ]
    print(f"backend: {backend_info().active}; rounds per sample: {n}; median of 7 samples")
    print(f"{'operation':46} {'ms/op':>7} {'baseline ms':>12} {'ratio':>6}")
    for name, ms, base, ratio in rows:
        print(f"{name:46} {ms:7.3f} {base:12.3f} {ratio:6.2f}")
    print("baseline: the SM2 verifications the operation needs (2 for a chain, 3 for CMS),")
    print("keys already loaded; target ratio <= 1.5.  'cold' empties the certificate and")
    print("public-key caches before every call (first sight of a certificate).")


if __name__ == "__main__":
    main()
