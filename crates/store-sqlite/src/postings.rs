//! The packed history index: postings as compact JSON arrays of integers.
//!
//! JSON (not a private binary format) so that auditors can unpack it in SQL with `json_each`;
//! written and read here by hand because the shape is fixed and small.

/// Most postings in one row of `account_postings`.
pub(crate) const POSTINGS_PER_ROW_MAX: usize = 1024;

/// Writes `[[a,b,c],[a,b,c]]` (or pairs) for rows of integers.
pub(crate) fn encode<const N: usize>(rows: &[[i64; N]]) -> String {
    let mut text = Vec::with_capacity(rows.len() * (N * 20 + 3) + 2);
    text.push(b'[');
    for (index, row) in rows.iter().enumerate() {
        if index > 0 {
            text.push(b',');
        }
        text.push(b'[');
        for (column, value) in row.iter().enumerate() {
            if column > 0 {
                text.push(b',');
            }
            push_integer(&mut text, *value);
        }
        text.push(b']');
    }
    text.push(b']');
    String::from_utf8(text).expect("digits, brackets and commas are ASCII")
}

/// Appends the decimal digits of `value`: the formatting machinery costs several times more,
/// and a batch writes tens of thousands of these.
fn push_integer(text: &mut Vec<u8>, value: i64) {
    text.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Reads what [`encode`] wrote; `None` if the text has another shape.
pub(crate) fn decode<const N: usize>(text: &str, out: &mut Vec<[i64; N]>) -> Option<()> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?.trim();
    if inner.is_empty() {
        return Some(());
    }
    let inner = inner.strip_prefix('[')?.strip_suffix(']')?;
    for row_text in inner.split("],[") {
        let mut row = [0i64; N];
        let mut fields = row_text.split(',');
        for value in row.iter_mut() {
            *value = fields.next()?.trim().parse().ok()?;
        }
        if fields.next().is_some() {
            return None;
        }
        out.push(row);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let rows = vec![[1i64, 0, 3], [4, -5, i64::MAX], [i64::MIN, 10, 99]];
        let text = encode(&rows);
        assert_eq!(
            text,
            "[[1,0,3],[4,-5,9223372036854775807],[-9223372036854775808,10,99]]"
        );
        let mut back = Vec::new();
        decode::<3>(&text, &mut back).unwrap();
        assert_eq!(back, rows);
        let mut empty: Vec<[i64; 2]> = Vec::new();
        assert_eq!(encode(&empty), "[]");
        decode::<2>("[]", &mut empty).unwrap();
        assert!(empty.is_empty());
        assert!(decode::<2>("[[1,2,3]]", &mut empty).is_none());
        assert!(decode::<2>("[[1,x]]", &mut empty).is_none());
    }
}
