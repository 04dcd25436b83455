//! Drawing a payload as a QR symbol: SVG, PNG or the terminal. The symbol (modes, error
//! correction, masking) comes from the `qrcode` crate; the drawing is here, so no image stack
//! is built in. PNG is written by hand: grayscale, stored (uncompressed) deflate blocks.

use qrcode::{Color, EcLevel, QrCode};

/// Light modules around the symbol, as ISO/IEC 18004 asks.
pub const QUIET_ZONE_MODULES: usize = 4;
/// Pixels per module in a PNG.
pub const PNG_PIXELS_PER_MODULE: usize = 8;

/// The symbol's modules, row by row (`true`: dark), and its width in modules.
pub fn modules(payload: &str) -> anyhow::Result<(usize, Vec<bool>)> {
    // Level M (15 %): what merchant codes printed on counters commonly use.
    let code = QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M)
        .map_err(|error| anyhow::anyhow!("the payload does not fit a QR symbol: {error}"))?;
    let width = code.width();
    let dark = code
        .to_colors()
        .into_iter()
        .map(|color| color == Color::Dark)
        .collect();
    Ok((width, dark))
}

fn dark_at(width: usize, dark: &[bool], x: isize, y: isize) -> bool {
    let quiet = QUIET_ZONE_MODULES as isize;
    let (x, y) = (x - quiet, y - quiet);
    x >= 0
        && y >= 0
        && (x as usize) < width
        && (y as usize) < width
        && dark[y as usize * width + x as usize]
}

/// An SVG drawing, one path for the dark modules.
pub fn svg(width: usize, dark: &[bool]) -> String {
    let size = width + 2 * QUIET_ZONE_MODULES;
    let mut path = String::new();
    for y in 0..width {
        for x in 0..width {
            if dark[y * width + x] {
                path.push_str(&format!(
                    "M{} {}h1v1h-1z",
                    x + QUIET_ZONE_MODULES,
                    y + QUIET_ZONE_MODULES
                ));
            }
        }
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" width=\"{}\" height=\"{}\" shape-rendering=\"crispEdges\">\
<rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>\n",
        size * PNG_PIXELS_PER_MODULE,
        size * PNG_PIXELS_PER_MODULE
    )
}

/// Two module rows per text line with half blocks, black on a forced white background (ANSI),
/// so it scans on dark and light terminals alike.
pub fn terminal(width: usize, dark: &[bool]) -> String {
    let size = (width + 2 * QUIET_ZONE_MODULES) as isize;
    let mut text = String::new();
    let mut y = 0;
    while y < size {
        text.push_str("\x1b[47;30m");
        for x in 0..size {
            let top = dark_at(width, dark, x, y);
            let bottom = y + 1 < size && dark_at(width, dark, x, y + 1);
            text.push(match (top, bottom) {
                (true, true) => '\u{2588}',
                (true, false) => '\u{2580}',
                (false, true) => '\u{2584}',
                (false, false) => ' ',
            });
        }
        text.push_str("\x1b[0m\n");
        y += 2;
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

/// A PNG: 8-bit grayscale, [`PNG_PIXELS_PER_MODULE`] pixels a module, quiet zone included.
pub fn png(width: usize, dark: &[bool]) -> Vec<u8> {
    let modules = width + 2 * QUIET_ZONE_MODULES;
    let pixels = modules * PNG_PIXELS_PER_MODULE;
    let mut raw = Vec::with_capacity(pixels * (pixels + 1));
    for y in 0..pixels {
        raw.push(0); // filter: none
        for x in 0..pixels {
            let on = dark_at(
                width,
                dark,
                (x / PNG_PIXELS_PER_MODULE) as isize,
                (y / PNG_PIXELS_PER_MODULE) as isize,
            );
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
    let side = u32::try_from(pixels).expect("small image");
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&side.to_be_bytes());
    header.extend_from_slice(&side.to_be_bytes());
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
        let (width, dark) = modules("00020101021126").unwrap();
        assert_eq!(width, 21, "a short payload fits version 1");
        let dark_count = dark.iter().filter(|on| **on).count();
        assert_eq!(svg(width, &dark).matches("h1v1h-1z").count(), dark_count);
        let drawing = terminal(width, &dark);
        assert_eq!(
            drawing.lines().count(),
            (width + 2 * QUIET_ZONE_MODULES).div_ceil(2)
        );
        // The finder pattern's top row: seven dark modules after the quiet zone.
        assert!(dark[..7].iter().all(|on| *on) && !dark[7]);
    }
}
