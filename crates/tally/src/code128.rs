//! Code 128 (ISO/IEC 15417) for numeric payment codes: code set C packs two digits a symbol;
//! anything else uses code set B. Written here from the specification's symbol table.

/// Bar and space widths, in modules, of symbol values 0–105 (bar first; six elements, eleven
/// modules each), as tabulated by ISO/IEC 15417.
const PATTERNS: [&[u8; 6]; 106] = [
    b"212222", b"222122", b"222221", b"121223", b"121322", b"131222", b"122213", b"122312",
    b"132212", b"221213", b"221312", b"231212", b"112232", b"122132", b"122231", b"113222",
    b"123122", b"123221", b"223211", b"221132", b"221231", b"213212", b"223112", b"312131",
    b"311222", b"321122", b"321221", b"312212", b"322112", b"322211", b"212123", b"212321",
    b"232121", b"111323", b"131123", b"131321", b"112313", b"132113", b"132311", b"211313",
    b"231113", b"231311", b"112133", b"112331", b"132131", b"113123", b"113321", b"133121",
    b"313121", b"211331", b"231131", b"213113", b"213311", b"213131", b"311123", b"311321",
    b"331121", b"312113", b"312311", b"332111", b"314111", b"221411", b"431111", b"111224",
    b"111422", b"121124", b"121421", b"141122", b"141221", b"112214", b"112412", b"122114",
    b"122411", b"142112", b"142211", b"241211", b"221114", b"413111", b"241112", b"134111",
    b"111242", b"121142", b"121241", b"114212", b"124112", b"124211", b"411212", b"421112",
    b"421211", b"212141", b"214121", b"412121", b"111143", b"111341", b"131141", b"114113",
    b"114311", b"411113", b"411311", b"113141", b"114131", b"311141", b"411131", b"211412",
    b"211214", b"211232",
];
/// The stop pattern: seven elements, thirteen modules, ending with the termination bar.
const STOP: &[u8; 7] = b"2331112";
const START_B: usize = 104;
const START_C: usize = 105;
/// Light modules on each side, as the specification asks (ten times the narrowest element).
pub const QUIET_ZONE_MODULES: usize = 10;
/// Longest text drawn.
pub const TEXT_CHARS_MAX: usize = 80;

/// The symbol values for `text`: start, data, check, without the stop.
fn values(text: &str) -> anyhow::Result<Vec<usize>> {
    anyhow::ensure!(
        !text.is_empty() && text.len() <= TEXT_CHARS_MAX,
        "Code 128 draws 1 to {TEXT_CHARS_MAX} characters"
    );
    let mut values = Vec::with_capacity(text.len() + 2);
    if text.len().is_multiple_of(2) && text.bytes().all(|byte| byte.is_ascii_digit()) {
        values.push(START_C);
        for pair in text.as_bytes().chunks(2) {
            values.push(usize::from((pair[0] - b'0') * 10 + (pair[1] - b'0')));
        }
    } else {
        values.push(START_B);
        for byte in text.bytes() {
            anyhow::ensure!(
                (32..=126).contains(&byte),
                "Code 128 set B draws printable ASCII only"
            );
            values.push(usize::from(byte - 32));
        }
    }
    let check = values
        .iter()
        .enumerate()
        .map(|(position, value)| position.max(1) * value)
        .sum::<usize>()
        % 103;
    values.push(check);
    Ok(values)
}

/// The modules of the symbol, quiet zones included (`true`: bar).
pub fn modules(text: &str) -> anyhow::Result<Vec<bool>> {
    let mut modules = vec![false; QUIET_ZONE_MODULES];
    let mut push = |widths: &[u8]| {
        for (element, width) in widths.iter().enumerate() {
            let bar = element % 2 == 0;
            modules.extend(std::iter::repeat_n(bar, usize::from(width - b'0')));
        }
    };
    for value in values(text)? {
        push(PATTERNS[value]);
    }
    push(STOP);
    modules.extend(std::iter::repeat_n(false, QUIET_ZONE_MODULES));
    Ok(modules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_the_shape_the_specification_gives_it() {
        let mut seen = std::collections::HashSet::new();
        for pattern in PATTERNS {
            let widths: Vec<u32> = pattern
                .iter()
                .map(|digit| u32::from(digit - b'0'))
                .collect();
            assert_eq!(widths.iter().sum::<u32>(), 11, "{pattern:?}");
            assert_eq!(
                (widths[0] + widths[2] + widths[4]) % 2,
                0,
                "bars are even: {pattern:?}"
            );
            assert!(seen.insert(pattern), "{pattern:?} twice");
        }
        assert_eq!(
            STOP.iter()
                .map(|digit| u32::from(digit - b'0'))
                .sum::<u32>(),
            13
        );
    }

    #[test]
    fn digits_pack_in_set_c_with_the_modulo_103_check() {
        // Start C (105), 12, 34, 56; check (105 + 1·12 + 2·34 + 3·56) mod 103 = 44.
        assert_eq!(values("123456").unwrap(), vec![105, 12, 34, 56, 44]);
        // Odd length: set B, "A" is 33; check (104 + 33) mod 103 = 34.
        assert_eq!(values("A").unwrap(), vec![104, 33, 34]);
        let drawn = modules("281234567890123456").unwrap();
        // Quiet zones, start, 9 pairs, check: 11 modules each; stop: 13.
        assert_eq!(drawn.len(), 2 * QUIET_ZONE_MODULES + 11 * 11 + 13);
        assert!(drawn[QUIET_ZONE_MODULES] && drawn[drawn.len() - QUIET_ZONE_MODULES - 1]);
        assert!(values("é").is_err() && values("").is_err());
    }
}
