//! Netlink attributes and native-endian integers inside netlink payloads: the one
//! walker that the dump parser ([`crate::kernel::rtdump`]) and the qdisc-option parser
//! ([`crate::domain::qdisc`]) share.
//!
//! Pure. An attribute is `struct nlattr` (u16 length including the 4-byte header, u16
//! type whose top two bits are flags) followed by its value, padded to 4 bytes. A
//! header that does not fit, or claims a length below 4 or beyond the buffer, ends the
//! walk with an error rather than a panic.

use std::ops::Range;

/// The type bits of `nla_type` (NLA_F_NESTED and NLA_F_NET_BYTEORDER masked off).
pub const NLA_TYPE_MASK: u16 = 0x3FFF;

pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Netlink's 4-byte alignment.
pub fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// The attributes in `bytes`: (type, where the value lies in `bytes`). After an error
/// the walk ends.
pub fn spans(bytes: &[u8]) -> impl Iterator<Item = Result<(u16, Range<usize>), String>> + '_ {
    let mut offset = 0;
    std::iter::from_fn(move || {
        if offset >= bytes.len() {
            return None;
        }
        let rest = &bytes[offset..];
        let header = u16_at(rest, 0).zip(u16_at(rest, 2));
        let Some((len, kind)) = header.filter(|(len, _)| {
            let len = usize::from(*len);
            len >= 4 && len <= rest.len()
        }) else {
            let err = format!(
                "attribute header {:02x?} with {} bytes left",
                &rest[..rest.len().min(4)],
                rest.len()
            );
            offset = bytes.len();
            return Some(Err(err));
        };
        let len = usize::from(len);
        let value = offset + 4..offset + len;
        offset = (offset + align4(len)).min(bytes.len());
        Some(Ok((kind & NLA_TYPE_MASK, value)))
    })
}

/// The attributes in `bytes`: (type, value).
pub fn attributes(bytes: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), String>> + '_ {
    spans(bytes).map(|span| span.map(|(kind, range)| (kind, &bytes[range])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_padded_attributes_and_masks_flags() {
        // type 3 "ab" (len 6, padded to 8), nested-flagged type 5 with a u32.
        let mut b = vec![6, 0, 3, 0, b'a', b'b', 0, 0];
        b.extend_from_slice(&8u16.to_ne_bytes());
        b.extend_from_slice(&(5u16 | 0x8000).to_ne_bytes());
        b.extend_from_slice(&7u32.to_ne_bytes());
        let got: Vec<_> = attributes(&b).collect::<Result<_, _>>().unwrap();
        assert_eq!(got, vec![(3, &b"ab"[..]), (5, &7u32.to_ne_bytes()[..])]);
        assert_eq!(spans(&b).next().unwrap().unwrap(), (3, 4..6));
    }

    #[test]
    fn malformed_headers_end_the_walk_with_an_error() {
        for bad in [&[1u8, 0, 3, 0][..], &[200, 0, 3, 0, 1, 2], &[8, 0]] {
            let got: Vec<_> = attributes(bad).collect();
            assert_eq!(got.len(), 1, "{bad:?}");
            assert!(got[0].is_err(), "{bad:?}");
        }
        assert_eq!(attributes(&[]).count(), 0);
        assert_eq!(u32_at(&[1, 2, 3], 0), None);
        assert_eq!(u64_at(&[0; 8], usize::MAX), None);
    }
}
