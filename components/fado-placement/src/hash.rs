//! Rendezvous (highest-random-weight) scores: every (bucket, storage) pair
//! gets a pseudo-random weight from a fixed, platform-independent hash
//! (FNV-1a over the bucket name, mixed with the storage id by SplitMix64's
//! finaliser), so choices are stable across runs, releases and machines,
//! and adding or removing one storage deployment only moves the buckets
//! whose top choice it was.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The weight of placing bucket `name` on storage `id`.
pub fn rendezvous(name: &str, id: i64) -> u64 {
    mix(fnv1a(name.as_bytes()) ^ mix(id as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_fixed() {
        // Pinned so a change of algorithm (which would move replicas) is noticed.
        assert_eq!(fnv1a(b""), FNV_OFFSET);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            rendezvous("rep-policy-demo", 1),
            rendezvous("rep-policy-demo", 1)
        );
        assert_ne!(
            rendezvous("rep-policy-demo", 1),
            rendezvous("rep-policy-demo", 2)
        );
    }
}
