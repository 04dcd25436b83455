//! Drawing a payload as a QR symbol: SVG, PNG or the terminal. The symbol (modes, error
//! correction, masking) comes from the `qrcode` crate; the drawing is here, so no image stack
//! is built in. PNG is written by hand: grayscale, stored (uncompressed) deflate blocks.

use qrcode::{Color, EcLevel, QrCode};

/// Light modules around the symbol, as ISO/IEC 18004 asks.
pub const QUIET_ZONE_MODULES: usize = 4;
/// Pixels per module in a PNG.
pub const PNG_PIXELS_PER_MODULE: usize = 8;

/// Modules to draw, quiet zone included, row by row (`true`: dark).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    pub width: usize,
    pub height: usize,
    pub dark: Vec<bool>,
}

impl Bitmap {
    fn at(&self, x: usize, y: usize) -> bool {
        x < self.width && y < self.height && self.dark[y * self.width + x]
    }

    #[cfg(test)]
    pub fn dark_modules(&self) -> usize {
        self.dark.iter().filter(|on| **on).count()
    }
}

/// The QR symbol of `payload`, with its quiet zone.
pub fn qr_bitmap(payload: &str) -> anyhow::Result<Bitmap> {
    // Level M (15 %): what merchant codes printed on counters commonly use.
    let code = QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M)
        .map_err(|error| anyhow::anyhow!("the payload does not fit a QR symbol: {error}"))?;
    let symbol = code.width();
    let size = symbol + 2 * QUIET_ZONE_MODULES;
    let mut dark = vec![false; size * size];
    for (index, color) in code.to_colors().into_iter().enumerate() {
        let (x, y) = (index % symbol, index / symbol);
        dark[(y + QUIET_ZONE_MODULES) * size + x + QUIET_ZONE_MODULES] = color == Color::Dark;
    }
    Ok(Bitmap {
        width: size,
        height: size,
        dark,
    })
}

/// Rows of a drawn barcode, in modules.
pub const BARCODE_HEIGHT_MODULES: usize = 24;

/// The Code 128 symbol of `text`, quiet zones included, [`BARCODE_HEIGHT_MODULES`] high.
pub fn code128_bitmap(text: &str) -> anyhow::Result<Bitmap> {
    let row = crate::code128::modules(text)?;
    let width = row.len();
    Ok(Bitmap {
        width,
        height: BARCODE_HEIGHT_MODULES,
        dark: row.repeat(BARCODE_HEIGHT_MODULES),
    })
}

/// An SVG drawing, one path for the dark modules.
pub fn svg(bitmap: &Bitmap) -> String {
    let mut path = String::new();
    for y in 0..bitmap.height {
        for x in 0..bitmap.width {
            if bitmap.at(x, y) {
                path.push_str(&format!("M{x} {y}h1v1h-1z"));
            }
        }
    }
    let (width, height) = (bitmap.width, bitmap.height);
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{}\" height=\"{}\" shape-rendering=\"crispEdges\">\
<rect width=\"{width}\" height=\"{height}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>\n",
        width * PNG_PIXELS_PER_MODULE,
        height * PNG_PIXELS_PER_MODULE
    )
}

/// Two module rows per text line with half blocks, black on a forced white background (ANSI),
/// so it scans on dark and light terminals alike.
pub fn terminal(bitmap: &Bitmap) -> String {
    let mut text = String::new();
    for y in (0..bitmap.height).step_by(2) {
        text.push_str("\x1b[47;30m");
        for x in 0..bitmap.width {
            text.push(match (bitmap.at(x, y), bitmap.at(x, y + 1)) {
                (true, true) => '\u{2588}',
                (true, false) => '\u{2580}',
                (false, true) => '\u{2584}',
                (false, false) => ' ',
            });
        }
        text.push_str("\x1b[0m\n");
    }
    text
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for byte in bytes {
        a = (a + u32::from(*byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(
        &u32::try_from(data.len())
            .expect("small chunks")
            .to_be_bytes(),
    );
    let start = png.len();
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let crc = crc32(&png[start..]);
    png.extend_from_slice(&crc.to_be_bytes());
}

/// A PNG: 8-bit grayscale, [`PNG_PIXELS_PER_MODULE`] pixels a module.
pub fn png(bitmap: &Bitmap) -> Vec<u8> {
    let (columns, rows) = (
        bitmap.width * PNG_PIXELS_PER_MODULE,
        bitmap.height * PNG_PIXELS_PER_MODULE,
    );
    let mut raw = Vec::with_capacity(rows * (columns + 1));
    for y in 0..rows {
        raw.push(0); // filter: none
        for x in 0..columns {
            let on = bitmap.at(x / PNG_PIXELS_PER_MODULE, y / PNG_PIXELS_PER_MODULE);
            raw.push(if on { 0 } else { 255 });
        }
    }
    // zlib: header, stored deflate blocks of at most 65,535 bytes, Adler-32.
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (index, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(index + 1 == blocks.len()));
        let length = u16::try_from(block.len()).expect("block fits u16");
        zlib.extend_from_slice(&length.to_le_bytes());
        zlib.extend_from_slice(&(!length).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&u32::try_from(columns).expect("small image").to_be_bytes());
    header.extend_from_slice(&u32::try_from(rows).expect("small image").to_be_bytes());
    header.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grayscale, deflate, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &zlib);
    chunk(&mut png, b"IEND", &[]);
    png
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_their_published_check_values() {
        // The check value of CRC-32 (ISO-HDLC) and Adler-32 over "123456789".
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(adler32(b"123456789"), 0x091E_01DE);
    }

    #[test]
    fn every_drawing_shows_every_dark_module() {
        let bitmap = qr_bitmap("00020101021126").unwrap();
        assert_eq!(
            bitmap.width,
            21 + 2 * QUIET_ZONE_MODULES,
            "version 1 and its quiet zone"
        );
        assert_eq!(
            svg(&bitmap).matches("h1v1h-1z").count(),
            bitmap.dark_modules()
        );
        assert_eq!(terminal(&bitmap).lines().count(), bitmap.height.div_ceil(2));
        // The finder pattern's top row: seven dark modules after the quiet zone.
        let row = QUIET_ZONE_MODULES * bitmap.width + QUIET_ZONE_MODULES;
        assert!(bitmap.dark[row..row + 7].iter().all(|on| *on) && !bitmap.dark[row + 7]);
        let barcode = code128_bitmap("281234567890123456").unwrap();
        assert_eq!(barcode.height, BARCODE_HEIGHT_MODULES);
        assert_eq!(
            svg(&barcode).matches("h1v1h-1z").count(),
            barcode.dark_modules()
        );
    }
}
