//! The protobuf wire format, as much of it as an ONNX file needs: a message
//! is a sequence of fields, each a key (`field number << 3 | wire type`)
//! followed by its value.
//!
//! | wire type | value | used for |
//! |---|---|---|
//! | 0, varint | 7 bits a byte, low bits first, high bit set on all but the last | `int64`, `int32`, enums |
//! | 2, length-delimited | a varint length, then that many bytes | strings, bytes, nested messages, packed repeated numbers |
//! | 5, 32-bit | 4 bytes, little-endian | `float` |
//!
//! Reference: <https://protobuf.dev/programming-guides/encoding/>.

/// One message being written: its fields' bytes, in the order added.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    bytes: Vec<u8>,
}

const VARINT: u8 = 0;
const LENGTH_DELIMITED: u8 = 2;
const FIXED32: u8 = 5;

/// Appends `v` as a varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Message {
    /// An empty message.
    pub fn new() -> Self {
        Self::default()
    }

    /// The encoded message.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        put_varint(
            &mut self.bytes,
            u64::from(field) << 3 | u64::from(wire_type),
        );
    }

    /// An integer field (`int64`, `int32` or an enum). Negative numbers
    /// take ten bytes, as protobuf's two's-complement rule says.
    pub fn int(mut self, field: u32, v: i64) -> Self {
        self.key(field, VARINT);
        put_varint(&mut self.bytes, v as u64);
        self
    }

    /// A `float` field.
    pub fn float(mut self, field: u32, v: f32) -> Self {
        self.key(field, FIXED32);
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `bytes` field.
    pub fn bytes(mut self, field: u32, v: &[u8]) -> Self {
        self.key(field, LENGTH_DELIMITED);
        put_varint(&mut self.bytes, v.len() as u64);
        self.bytes.extend_from_slice(v);
        self
    }

    /// A `string` field.
    pub fn string(self, field: u32, v: &str) -> Self {
        self.bytes(field, v.as_bytes())
    }

    /// A nested message.
    pub fn message(self, field: u32, m: &Message) -> Self {
        self.bytes(field, &m.bytes)
    }

    /// A repeated integer field, packed (one length-delimited field holding
    /// the varints), as proto3 writes repeated numbers.
    pub fn packed_ints(self, field: u32, vs: &[i64]) -> Self {
        let mut packed = Vec::new();
        for &v in vs {
            put_varint(&mut packed, v as u64);
        }
        self.bytes(field, &packed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reads a varint back: (value, bytes used).
    fn get_varint(b: &[u8]) -> Option<(u64, usize)> {
        let mut v = 0u64;
        for (i, &byte) in b.iter().enumerate().take(10) {
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some((v, i + 1));
            }
        }
        None
    }

    #[test]
    fn known_encodings() {
        // The protobuf guide's examples: 150 is 96 01; field 1 = 150 is 08 96 01.
        assert_eq!(Message::new().int(1, 150).into_bytes(), [0x08, 0x96, 0x01]);
        // Field 2, string "testing": 12 07 74 65 73 74 69 6e 67.
        assert_eq!(
            Message::new().string(2, "testing").into_bytes(),
            [0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']
        );
        // A negative int64 is its 64-bit two's complement: ten bytes.
        let neg = Message::new().int(1, -1).into_bytes();
        assert_eq!(neg.len(), 11);
        assert_eq!(neg[10], 0x01);
        // Float 1.0 in field 2: key 0x15, then 00 00 80 3f.
        assert_eq!(
            Message::new().float(2, 1.0).into_bytes(),
            [0x15, 0, 0, 0x80, 0x3f]
        );
        // Packed [3, 270, 86942] in field 4: the guide's 22 06 03 8e 02 9e a7 05.
        assert_eq!(
            Message::new().packed_ints(4, &[3, 270, 86942]).into_bytes(),
            [0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05]
        );
    }

    proptest! {
        #[test]
        fn varints_read_back(v: u64) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            prop_assert_eq!(get_varint(&out), Some((v, out.len())));
            prop_assert!(out.len() <= 10);
        }

        #[test]
        fn nested_messages_carry_their_length(field in 1u32..(1 << 29), payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let bytes = Message::new().bytes(field, &payload).into_bytes();
            let (key, k) = get_varint(&bytes).unwrap();
            prop_assert_eq!(key, u64::from(field) << 3 | 2);
            let (len, l) = get_varint(&bytes[k..]).unwrap();
            prop_assert_eq!(len as usize, payload.len());
            prop_assert_eq!(&bytes[k + l..], &payload[..]);
        }
    }
}
