//! 64-bit MurmurHash2 as GNU libstdc++ computes `std::hash<std::string>` (seed `0xc70f6907`),
//! which Envoy's ring hash uses for `hash_function: MURMUR_HASH_2`: rings built with it place
//! hosts where Envoy (and other proxies keyed on libstdc++'s string hash) place them.

const MUL: u64 = 0xc6a4_a793_5bd1_e995;

/// libstdc++'s seed for `std::hash` of strings.
pub(super) const STD_HASH_SEED: u64 = 0xc70f_6907;

fn shift_mix(v: u64) -> u64 {
    v ^ (v >> 47)
}

pub(super) fn murmur_hash2(key: &[u8], seed: u64) -> u64 {
    let mut hash = seed ^ (key.len() as u64).wrapping_mul(MUL);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let data = shift_mix(u64::from_le_bytes(word).wrapping_mul(MUL)).wrapping_mul(MUL);
        hash ^= data;
        hash = hash.wrapping_mul(MUL);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        // The trailing bytes as a little-endian number.
        let data = tail
            .iter()
            .rev()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        hash ^= data;
        hash = hash.wrapping_mul(MUL);
    }
    shift_mix(shift_mix(hash).wrapping_mul(MUL))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_libstdcxx_std_hash_of_strings() {
        // Values printed by `std::hash<std::string>{}` with g++ on x86_64.
        for (key, want) in [
            ("", 6142509188972423790u64),
            ("a", 4993892634952068459),
            ("abcdefgh", 8664279048047335611),
            ("abcdefghi", 13036955925923793583),
            ("10.0.0.1:8080_0", 2887472326060304709),
            ("[2001:db8::1]:443_17", 18390954064997699254),
        ] {
            assert_eq!(murmur_hash2(key.as_bytes(), STD_HASH_SEED), want, "{key:?}");
        }
    }
}
