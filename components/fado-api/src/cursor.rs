//! Cursors of paginated lists: the position after which the next page
//! starts, tagged with the list it came from, so that one list's cursor
//! is refused by another instead of silently paging it from elsewhere.
//! Hex-encoded, so any position (an object key) survives a URL.

use crate::ApiError;

/// Hex digits of the list tag that starts every cursor.
const TAG_LEN: usize = 8;

/// FNV-1a: a stable, dependency-free tag; not a secret, only a label.
fn tag(list: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in list.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// The cursor of `list` that resumes after `position`.
pub fn encode(list: &str, position: &str) -> String {
    format!("{}{}", tag(list), hex::encode(position.as_bytes()))
}

/// The position a cursor of `list` resumes after.
pub fn decode(list: &str, cursor: &str) -> Result<String, ApiError> {
    let refused = || ApiError::invalid("cursor", "not a cursor this list returned");
    let (t, rest) = cursor.split_at_checked(TAG_LEN).ok_or_else(refused)?;
    if t != tag(list) {
        return Err(refused());
    }
    hex::decode(rest)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(refused)
}

/// A page of `list` from `limit + 1` fetched items (the extra one only
/// says there is more): the first `limit`, and the cursor resuming after
/// the last of them (`position` says what that is) when there is more.
pub fn page<T>(
    list: &str,
    mut items: Vec<T>,
    limit: i64,
    position: impl Fn(&T) -> String,
) -> fado_model::Page<T> {
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = if more {
        items.last().map(|last| encode(list, &position(last)))
    } else {
        None
    };
    fado_model::Page { items, next_cursor }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_resumes_its_own_list_only() {
        for position in ["", "42", "a/b c%2F\u{e9}\u{1}", &"k".repeat(1024)] {
            let c = encode("objects of logs", position);
            assert_eq!(decode("objects of logs", &c).unwrap(), position);
            assert_eq!(
                decode("objects of images", &c)
                    .unwrap_err()
                    .field
                    .as_deref(),
                Some("cursor")
            );
            assert!(c.bytes().all(|b| b.is_ascii_hexdigit()), "{c}");
        }
        for junk in ["", "1234567", "zzzzzzzzzz", "%%%", "42"] {
            assert!(decode("clusters", junk).is_err(), "{junk:?}");
        }
        assert_ne!(tag("clusters"), tag("buckets"));
    }
}
