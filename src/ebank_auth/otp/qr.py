"""QR codes for ``otpauth://`` enrolment URIs (SVG needs no imaging library)."""

from __future__ import annotations

import io

__all__ = ["qr_matrix", "qr_svg", "qr_terminal"]


def _qr(data: str) -> object:
    import qrcode

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    qr.add_data(data)
    qr.make(fit=True)
    return qr


def qr_svg(data: str) -> str:
    """An SVG document (paths only) encoding ``data``."""
    import qrcode.image.svg

    qr = _qr(data)
    image = qr.make_image(image_factory=qrcode.image.svg.SvgPathImage)  # type: ignore[attr-defined]
    raw = image.to_string()
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


def qr_matrix(data: str) -> list[list[bool]]:
    """The module matrix (True = dark), including the quiet zone."""
    qr = _qr(data)
    return [list(row) for row in qr.get_matrix()]  # type: ignore[attr-defined]


def qr_terminal(data: str) -> str:
    """The QR code drawn with Unicode half blocks, for a terminal."""
    qr = _qr(data)
    out = io.StringIO()
    qr.print_ascii(out=out, invert=True)  # type: ignore[attr-defined]
    return out.getvalue()
