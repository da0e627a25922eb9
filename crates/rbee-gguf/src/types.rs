//! GGML tensor types (block size and bytes per block) and llama.cpp file types.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A tensor's storage type, by its GGML id. Ids this crate does not know are kept, so a file
/// with a newer quantization still parses; only its byte sizes are then unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GgmlType(pub u32);

/// `(id, name, elements per block, bytes per block)`, as ggml defines them. Removed ids
/// (4, 5: Q4_2/Q4_3; 31–33 and 36–38: the repacked Q4_0/IQ4_NL variants) are absent.
const TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36),
    (41, "Q1_0", 128, 18),
];

impl GgmlType {
    /// 32-bit float.
    pub const F32: GgmlType = GgmlType(0);
    /// 16-bit float.
    pub const F16: GgmlType = GgmlType(1);
    /// 4-bit blocks of 32 with one scale.
    pub const Q4_0: GgmlType = GgmlType(2);
    /// 8-bit blocks of 32 with one scale.
    pub const Q8_0: GgmlType = GgmlType(8);
    /// bfloat16.
    pub const BF16: GgmlType = GgmlType(30);

    fn entry(self) -> Option<&'static (u32, &'static str, u64, u64)> {
        TYPES.iter().find(|t| t.0 == self.0)
    }

    /// The type with this name (case-insensitive), e.g. `q8_0`.
    pub fn from_name(name: &str) -> Option<GgmlType> {
        TYPES
            .iter()
            .find(|t| t.1.eq_ignore_ascii_case(name))
            .map(|t| GgmlType(t.0))
    }

    /// Whether this crate knows the type's layout.
    pub fn is_known(self) -> bool {
        self.entry().is_some()
    }

    /// ggml's name (`Q4_K`), or `type<id>` for an unknown id.
    pub fn name(self) -> String {
        match self.entry() {
            Some(t) => t.1.to_string(),
            None => format!("type{}", self.0),
        }
    }

    /// Elements per block (1 for plain types).
    pub fn block_size(self) -> Option<u64> {
        self.entry().map(|t| t.2)
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> Option<u64> {
        self.entry().map(|t| t.3)
    }

    /// Bytes of a row of `n` elements (`None` if unknown, not a whole number of blocks, or
    /// overflowing).
    pub fn row_bytes(self, n: u64) -> Option<u64> {
        let (_, _, block, bytes) = *self.entry()?;
        if !n.is_multiple_of(block) {
            return None;
        }
        (n / block).checked_mul(bytes)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl Serialize for GgmlType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// The inverse of its `Serialize`: a name (`Q4_K`), or `type<id>` for an id this crate does not
/// know.
impl<'de> Deserialize<'de> for GgmlType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        GgmlType::from_name(&name)
            .or_else(|| name.strip_prefix("type")?.parse().ok().map(GgmlType))
            .ok_or_else(|| serde::de::Error::custom(format!("unknown ggml type `{name}`")))
    }
}

/// llama.cpp's `general.file_type` (`LLAMA_FTYPE_MOSTLY_*`): the quantization a file was made
/// with, named as in quant file names (`Q4_K_M`).
pub fn file_type_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        39 => "NVFP4",
        40 => "Q1_0",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_layouts() {
        assert_eq!(GgmlType::F16.row_bytes(4096), Some(8192));
        assert_eq!(GgmlType::Q8_0.row_bytes(4096), Some(4096 / 32 * 34));
        assert_eq!(GgmlType(12).row_bytes(4096), Some(16 * 144));
        // Not a whole number of blocks.
        assert_eq!(GgmlType(12).row_bytes(100), None);
        assert_eq!(GgmlType(999).row_bytes(32), None);
        assert_eq!(GgmlType(999).name(), "type999");
        assert_eq!(GgmlType::from_name("q4_k"), Some(GgmlType(12)));
        assert_eq!(file_type_name(15), Some("Q4_K_M"));
        assert_eq!(file_type_name(4), None);
        // No overflow on hostile dimensions.
        assert_eq!(GgmlType::F32.row_bytes(u64::MAX), None);
    }
}
